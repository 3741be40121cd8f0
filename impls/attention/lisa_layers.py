"""LISA attention layers for downstream models: LISA-Base, LISA-Soft and LISA-Mini.

All take ``x`` of shape (batch, L, D) — item embeddings, since LISA's quantiser encodes the
embeddings themselves — and return (batch, L, D)::

    forward(x, *, causal=True, key_padding_mask=None)      mask: (batch, L), True = padded

Each codebook b plays the role of a head with its own projections (D x D each)::

    Qc[b] = C[b] Wq[b],  Kc[b] = C[b] Wk[b],  Vc[b] = C[b] Wv[b]        (W, D) each
    T[b]  = Qc[b] Kc[b]^T / sqrt(D)                                     (W, W) score table

and the per-codebook outputs are summed (see ``lisa_operator``). The variants:

* LISA-Base: hard codes u_l (queries) and one-hot key codes; the scores of query l are the
  row T[b, u_l]. Keys are trained straight-through (forward one-hot, gradient of the soft
  codes p). The query code is a detached index in the authors' configuration; the
  project's sends the straight-through gradient through it too (``query_code_gradient``).
* LISA-Soft: keys are soft codes (softmax probabilities: histograms are decayed prefix
  sums of probabilities). Authors: the query's scores are the row T[b, u_l] of its own
  argmax code, as in Base, and the quantiser's residual subtracts the soft mixture
  p_b C[b] (``soft_residual``). Project: the query is the raw embedding projected per
  codebook, scores x_l Wq[b] Kc[b]^T / sqrt(D), hard residual. ``regularizer`` holds the
  quantisation penalty to add to the training loss (see :class:`LISAConfig`).
* LISA-Mini: LISA-Base over a small sequence codebook (W = 16 by default), with a separate,
  larger ``target_quantizer`` that a downstream model uses to encode target items.

Which of the two semantics a layer follows, and how a downstream model wires it, is a
:class:`LISAConfig` (``config="authors"``, the default, or ``"project"``, or a config
with individual flags changed). After every forward the layer keeps ``reconstruction``
(batch, L, D), the quantised x (the authors' residual stream).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from impls.attention.lisa_operator import lisa_attention, lisa_attention_cached
from impls.attention.lisa_quantizer import ResidualQuantizer

__all__ = [
    "AUTHORS",
    "LISA_CONFIGS",
    "LISABase",
    "LISAConfig",
    "LISAMini",
    "LISASoft",
    "PROJECT",
    "lisa_config",
]

AUTHORS_GAMMA = math.exp(-0.1)
REGULARIZERS = ("authors", "project")
ITEM_INITS = ("xavier", "normal")


@dataclass(frozen=True)
class LISAConfig:
    """Where the project's LISA departs from the authors' published code, flag by flag.

    Layer flags:
        query_code_gradient: Base/Mini (and Soft with ``soft_query="code"``): send the
            straight-through gradient through the query's own code (project) rather than
            treating it as a detached index (authors).
        soft_query: LISA-Soft's query: ``"code"`` (authors: row T[b, u_l] of the query's
            argmax code) or ``"projected"`` (project: x_l Wq[b], scores against Kc[b]).
        soft_residual: LISA-Soft's quantiser subtracts the soft mixture p_b C[b] (authors)
            instead of the chosen codeword (project).
        regularizer: LISA-Soft's penalty, with x the layer input and x_hat its
            reconstruction (detached): ``"authors"`` = 1e-2 * sum over non-padded l of
            ||x_l - x_hat_l||^2 / (number of non-padded l); ``"project"`` = mean over all
            (batch, L, D) elements of (x - x_hat)^2, padding included, weight 1.
    Model flags (read by ``harness.seqrec.sasrec.SASRec``):
        quantize_clean_input: the layer sees the un-dropped sqrt(D) E[seq]; dropout is
            applied afterwards (authors), not before (project).
        reconstruction_residual: the residual stream is the layer's ``reconstruction``
            (authors), not the embedding (project).
        quantized_targets: LISA-Base scores targets against their quantised embeddings
            (authors), not the raw ones (project). (Mini always uses its target codebook;
            Soft never quantises targets.)
        scale_targets: target vectors are divided by sqrt(D), i.e. at E's scale (project),
            not left at the sequence's scale sqrt(D) E (authors).
        item_init: the item embeddings E (n + 1, D): ``"xavier"`` (authors: Xavier-normal,
            standard deviation sqrt(2 / (n + 1 + D))) or ``"normal"`` (project:
            N(0, 1/D)). With ``scale_targets=False`` the initial scores have standard
            deviation about sqrt(D) * std(E) * sqrt(D): ~3 on ML-1M with Xavier, ~sqrt(D)
            with N(0, 1/D).
    """

    query_code_gradient: bool = False
    soft_query: str = "code"
    soft_residual: bool = True
    regularizer: str = "authors"
    quantize_clean_input: bool = True
    reconstruction_residual: bool = True
    quantized_targets: bool = True
    scale_targets: bool = False
    item_init: str = "xavier"

    def __post_init__(self):
        if self.soft_query not in ("code", "projected"):
            raise ValueError(f"soft_query must be 'code' or 'projected', got {self.soft_query!r}")
        if self.item_init not in ITEM_INITS:
            raise ValueError(f"item_init must be one of {ITEM_INITS}, got {self.item_init!r}")
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {self.regularizer!r}")
        for field in dataclasses.fields(self):
            if field.type in ("bool", bool) and not isinstance(getattr(self, field.name), bool):
                raise ValueError(f"{field.name} must be a bool, got {getattr(self, field.name)!r}")


AUTHORS = LISAConfig()
PROJECT = LISAConfig(
    query_code_gradient=True,
    soft_query="projected",
    soft_residual=False,
    regularizer="project",
    quantize_clean_input=False,
    reconstruction_residual=False,
    quantized_targets=False,
    scale_targets=True,
    item_init="normal",
)
LISA_CONFIGS = {"authors": AUTHORS, "project": PROJECT}


def lisa_config(config: str | LISAConfig = "authors", **overrides) -> LISAConfig:
    """A :class:`LISAConfig` from a preset name (``"authors"``/``"project"``) or a config,
    with ``overrides`` (flag=value) applied; ValueError naming the choices otherwise."""
    if isinstance(config, str):
        if config not in LISA_CONFIGS:
            raise ValueError(f"LISA config must be one of {tuple(LISA_CONFIGS)}, got {config!r}")
        config = LISA_CONFIGS[config]
    if not isinstance(config, LISAConfig):
        raise TypeError(f"config must be a preset name or a LISAConfig, got {type(config)}")
    names = {f.name for f in dataclasses.fields(LISAConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown LISA config flag(s) {unknown}; known: {sorted(names)}")
    return dataclasses.replace(config, **overrides)


class _LISALayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        *,
        num_codebooks: int = 8,
        num_codewords: int = 128,
        gamma: float = AUTHORS_GAMMA,
        tau: float = 0.7,
        chunk_size: int = 512,
        config: str | LISAConfig = "authors",
    ):
        super().__init__()
        self.config = lisa_config(config)
        self.d_model = d_model
        self.gamma = gamma
        self.chunk_size = chunk_size
        self.quantizer = ResidualQuantizer(
            d_model, num_codebooks, num_codewords, tau, soft_residual=self._soft_residual()
        )
        self.reconstruction: Tensor | None = None
        std = 1.0 / math.sqrt(d_model)
        shape = (num_codebooks, d_model, d_model)
        self.w_query = nn.Parameter(torch.randn(shape) * std)
        self.w_key = nn.Parameter(torch.randn(shape) * std)
        self.w_value = nn.Parameter(torch.randn(shape) * std)

    def _soft_residual(self) -> bool:
        return False

    def target_encoder(self) -> ResidualQuantizer | None:
        """The quantiser a downstream model encodes target items with (None: raw)."""
        return None

    def _options(self, causal: bool, key_padding_mask: Tensor | None) -> dict:
        return dict(
            gamma=self.gamma,
            causal=causal,
            key_padding_mask=key_padding_mask,
            scale=1.0 / math.sqrt(self.d_model),
            chunk_size=self.chunk_size,
        )

    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point tensor of shape (batch, L, D)")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x must have shape (batch, L, D={self.d_model}), got {tuple(x.shape)}"
            )

    def _codewords(self, weight: Tensor, dtype: torch.dtype) -> Tensor:
        """C[b] @ weight[b]: (B, W, D)."""
        return torch.einsum("bwd,bde->bwe", self.quantizer.codebooks.to(dtype), weight.to(dtype))


class LISABase(_LISALayer):
    """LISA-Base: hard codes and the cached score table (see module docstring).

    x (batch, L, D) -> (batch, L, D): out_l = sum_b sum_w a[b, l, w] Vc[b, w] with
    a[b, l, :] = softmax_w(T[b, u_l] + log H[b, l]), H the decayed histogram of the
    visible keys' one-hot codes (straight-through), u_l the query's own code (detached
    unless ``config.query_code_gradient``)."""

    def target_encoder(self) -> ResidualQuantizer | None:
        return self.quantizer if self.config.quantized_targets else None

    def forward(
        self, x: Tensor, *, causal: bool = True, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        self._check_x(x)
        quant = self.quantizer(x)
        self.reconstruction = quant.reconstruction
        codes = quant.codes.transpose(1, 2)  # (batch, B, L)
        probs = quant.probs.transpose(1, 2)  # (batch, B, L, W): straight-through gradient
        return lisa_attention_cached(
            codes,
            self._codewords(self.w_query, x.dtype),
            codes,
            self._codewords(self.w_key, x.dtype),
            self._codewords(self.w_value, x.dtype),
            query_code_probs=probs if self.config.query_code_gradient else None,
            key_code_probs=probs,
            **self._options(causal, key_padding_mask),
        )


class LISASoft(_LISALayer):
    """LISA-Soft: soft key histograms (see module docstring).

    x (batch, L, D) -> (batch, L, D): out_l = sum_b sum_w a[b, l, w] Vc[b, w] with
    a[b, l, :] = softmax_w(s[b, l] + log H[b, l]), H the decayed histogram of the visible
    keys' soft codes p, and s[b, l] = T[b, u_l] (``soft_query="code"``, authors) or
    x_l Wq[b] Kc[b]^T / sqrt(D) (``"projected"``, project). ``regularizer`` (a scalar) is
    set by every forward, see :class:`LISAConfig`."""

    AUTHORS_REG_WEIGHT = 1e-2

    def __init__(self, d_model: int, *, num_codewords: int = 32, **kwargs):
        super().__init__(d_model, num_codewords=num_codewords, **kwargs)
        self.regularizer: Tensor | None = None

    def _soft_residual(self) -> bool:
        return self.config.soft_residual

    def _regularizer(self, x: Tensor, x_hat: Tensor, mask: Tensor | None) -> Tensor:
        """authors: 1e-2 sum_{l kept, d} (x - x_hat)^2 / #kept; project: mean (x - x_hat)^2."""
        error = (x - x_hat.detach()) ** 2
        if self.config.regularizer == "project":
            return error.mean()
        keep = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
        if mask is not None:
            keep = (~mask).to(x.dtype)
        per_position = error.sum(-1) * keep
        return self.AUTHORS_REG_WEIGHT * per_position.sum() / keep.sum().clamp_min(1.0)

    def forward(
        self, x: Tensor, *, causal: bool = True, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        self._check_x(x)
        quant = self.quantizer(x)
        self.reconstruction = quant.reconstruction
        self.regularizer = self._regularizer(x, quant.reconstruction, key_padding_mask)
        probs = quant.probs.transpose(1, 2)  # (batch, B, L, W)
        options = self._options(causal, key_padding_mask)
        key_codewords = self._codewords(self.w_key, x.dtype)
        value_codewords = self._codewords(self.w_value, x.dtype)
        if self.config.soft_query == "code":
            codes = quant.codes.transpose(1, 2)  # (batch, B, L)
            return lisa_attention_cached(
                codes,
                self._codewords(self.w_query, x.dtype),
                probs,
                key_codewords,
                value_codewords,
                query_code_probs=probs if self.config.query_code_gradient else None,
                **options,
            )
        query = torch.einsum("nld,bde->nble", x, self.w_query.to(x.dtype))
        return lisa_attention(query, probs, key_codewords, value_codewords, **options)


class LISAMini(LISABase):
    """LISA-Mini: a small sequence codebook plus a separate target codebook."""

    def __init__(
        self, d_model: int, *, num_codewords: int = 16, target_codewords: int = 128, **kwargs
    ):
        super().__init__(d_model, num_codewords=num_codewords, **kwargs)
        self.target_quantizer = ResidualQuantizer(
            d_model, self.quantizer.num_codebooks, target_codewords, self.quantizer.tau
        )

    def target_encoder(self) -> ResidualQuantizer | None:
        return self.target_quantizer
