"""LISA attention layers for downstream models: LISA-Base, LISA-Soft and LISA-Mini.

All take ``x`` of shape (batch, L, D) — item embeddings, since LISA's quantiser encodes the
embeddings themselves — and return (batch, L, D)::

    forward(x, *, causal=True, key_padding_mask=None)      mask: (batch, L), True = padded

Each codebook b plays the role of a head with its own projections (D x D each)::

    Qc[b] = C[b] Wq[b],  Kc[b] = C[b] Wk[b],  Vc[b] = C[b] Wv[b]        (W, D) each

and the per-codebook outputs are summed (see ``lisa_operator``). The variants:

* LISA-Base: hard codes for queries and keys, scores read from the cached W x W table;
  trained straight-through: the operator gathers table rows and counts hard codes, and
  sends the gradient to the soft codes (``query_code_probs``/``key_code_probs``).
* LISA-Soft: keys are soft codes (softmax probabilities, so histograms are prefix sums of
  probabilities); queries are the raw embeddings projected per codebook, x Wq[b].
  ``regularizer`` holds the MSE that pulls embeddings toward their reconstruction; add it
  to the training loss. Downstream, targets are scored against raw embeddings.
* LISA-Mini: LISA-Base over a small sequence codebook (W = 16 by default), with a separate,
  larger ``target_quantizer`` that a downstream model uses to encode target items.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from impls.attention.lisa_operator import lisa_attention, lisa_attention_cached
from impls.attention.lisa_quantizer import ResidualQuantizer

__all__ = ["LISABase", "LISASoft", "LISAMini"]

AUTHORS_GAMMA = math.exp(-0.1)


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
    ):
        super().__init__()
        self.d_model = d_model
        self.gamma = gamma
        self.chunk_size = chunk_size
        self.quantizer = ResidualQuantizer(d_model, num_codebooks, num_codewords, tau)
        std = 1.0 / math.sqrt(d_model)
        shape = (num_codebooks, d_model, d_model)
        self.w_query = nn.Parameter(torch.randn(shape) * std)
        self.w_key = nn.Parameter(torch.randn(shape) * std)
        self.w_value = nn.Parameter(torch.randn(shape) * std)

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
    """LISA-Base: hard codes and the cached score table (see module docstring)."""

    def forward(
        self, x: Tensor, *, causal: bool = True, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        self._check_x(x)
        quant = self.quantizer(x)
        options = dict(
            gamma=self.gamma,
            causal=causal,
            key_padding_mask=key_padding_mask,
            scale=1.0 / math.sqrt(self.d_model),
            chunk_size=self.chunk_size,
        )
        codes = quant.codes.transpose(1, 2)  # (batch, B, L)
        probs = quant.probs.transpose(1, 2)  # (batch, B, L, W): straight-through gradient
        return lisa_attention_cached(
            codes,
            self._codewords(self.w_query, x.dtype),
            codes,
            self._codewords(self.w_key, x.dtype),
            self._codewords(self.w_value, x.dtype),
            query_code_probs=probs,
            key_code_probs=probs,
            **options,
        )


class LISASoft(_LISALayer):
    """LISA-Soft: soft key histograms, raw-embedding queries (see module docstring)."""

    def __init__(self, d_model: int, *, num_codewords: int = 32, **kwargs):
        super().__init__(d_model, num_codewords=num_codewords, **kwargs)
        self.regularizer: Tensor | None = None

    def forward(
        self, x: Tensor, *, causal: bool = True, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        self._check_x(x)
        quant = self.quantizer(x)
        self.regularizer = torch.mean((x - quant.reconstruction.detach()) ** 2)
        query = torch.einsum("nld,bde->nble", x, self.w_query.to(x.dtype))
        return lisa_attention(
            query,
            quant.probs.transpose(1, 2),  # (batch, B, L, W)
            self._codewords(self.w_key, x.dtype),
            self._codewords(self.w_value, x.dtype),
            gamma=self.gamma,
            causal=causal,
            key_padding_mask=key_padding_mask,
            scale=1.0 / math.sqrt(self.d_model),
            chunk_size=self.chunk_size,
        )


class LISAMini(LISABase):
    """LISA-Mini: a small sequence codebook plus a separate target codebook."""

    def __init__(
        self, d_model: int, *, num_codewords: int = 16, target_codewords: int = 128, **kwargs
    ):
        super().__init__(d_model, num_codewords=num_codewords, **kwargs)
        self.target_quantizer = ResidualQuantizer(
            d_model, self.quantizer.num_codebooks, target_codewords, self.quantizer.tau
        )
