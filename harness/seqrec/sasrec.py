"""A SASRec-style one-block model with a pluggable attention layer.

Input: item ids ``seq`` (batch, L), left-padded with 0 (``mask = seq == 0``, True =
padded). With E the item embeddings (n + 1, D), initialised N(0, 1/D), and P the learned
positions (L_max, D), initialised N(0, 1)::

    e = dropout(sqrt(D) * E[seq])                     (batch, L, D); padded rows zeroed
    a = attention(e, causal=True, key_padding_mask=mask)
    h = LayerNorm(e + P[0..L-1] + dropout(a))         positions join the residual stream
    h = LayerNorm(h + dropout(FFN(h)))                FFN: Linear(D, D) - ReLU - Linear(D, D)
    score(h_l, item i) = <h_l, T[i]>                  T = E (LISA-Mini: its target codes)

That is the wiring for every non-LISA method and for LISA layers with the project's
configuration. A LISA layer's ``config`` (``impls.attention.lisa_layers.LISAConfig``; the
authors' configuration is the default) changes it. The authors' wiring, x = sqrt(D) E[seq]
with padded rows zeroed and x_hat the layer's reconstruction of x::

    a = attention(x, causal=True, key_padding_mask=mask)   the un-dropped x is quantised
    h = LayerNorm(dropout(x_hat) + P[0..L-1] + dropout(a))  x_hat is the residual stream
    T[i] = Q(sqrt(D) E[i])      Base (its sequence quantiser Q), Mini (its target codebook)
    T[i] = sqrt(D) E[i]         Soft (targets not quantised)

i.e. targets stay at the sequence's scale (not divided by sqrt(D)). Each of these is a
separate flag (``quantize_clean_input``, ``reconstruction_residual``, ``quantized_targets``,
``scale_targets``). The authors also initialise E Xavier-normal, standard deviation
sqrt(2 / (n + 1 + D)) (``item_init="xavier"``), rather than N(0, 1/D).

Scale: the sequence sees unit-variance entries (sqrt(D) E, as in the Transformer and
SASRec), while scores use E itself, so that initial scores are O(1) (h is layer-normed).
With N(0, 1) embeddings scored directly the initial logits have standard deviation
sqrt(D) (loss ~8 at D = 128) and rarely seen items keep large random scores for many
epochs, which holds ML-1M validation HR@10 near a popularity ranker's.

The attention layer sees the item embeddings themselves (LISA's quantiser encodes items;
positions enter through the residual stream, the authors' set-up), the same for every
method. Training loss (per non-padded position l, target ``seq_{l+1}``, one uniform
negative ``n_l``)::

    BCE(sigmoid(score(h_l, seq_{l+1})), 1) + BCE(sigmoid(score(h_l, n_l)), 0)
    (+ LISA-Soft's quantisation regulariser)

Attention layers: ``lisa-base``, ``lisa-soft``, ``lisa-mini`` are
``impls.attention.lisa_layers``; ``none`` is the no-attention ablation (zero output); any
registry method (``exact`` = ``sdpa``) goes through :class:`RegistryAttentionLayer`:
x -> q, k, v by three D x D projections, one head of dim D, the registry operator with
``causal=True`` and the key padding mask, an output projection. Methods that cannot
attend causally are refused with a ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from impls import registry

__all__ = [
    "LISA_LAYERS",
    "NoAttention",
    "RegistryAttentionLayer",
    "SASRec",
    "canonical_method",
    "make_attention_layer",
]

LISA_LAYERS = ("lisa-base", "lisa-soft", "lisa-mini")
NO_ATTENTION = "none"
ALIASES = {"exact": "sdpa"}


class NoAttention(nn.Module):
    """The ablation ``none``: the attention output is zero, so position l sees only its own
    item and position (a learned next-item table). What any attention layer adds is
    measured against it."""

    def forward(
        self, x: Tensor, *, causal: bool = True, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        return torch.zeros_like(x)


def canonical_method(name: str) -> str:
    """``lisa_base``/``LISA-Base`` -> ``lisa-base``; ``exact`` -> ``sdpa``; others as given."""
    low = name.lower().replace("_", "-")
    if low in LISA_LAYERS or low == NO_ATTENTION:
        return low
    return ALIASES.get(name, name)


class RegistryAttentionLayer(nn.Module):
    """A registry operator as a layer: one head of dim D with q/k/v/output projections.

    ``forward(x (batch, L, D), *, causal, key_padding_mask (batch, L)) -> (batch, L, D)``.
    Methods with ``calibrate=True`` must be ``calibrate``-d (on a seeded batch of the
    training distribution, never on the inputs being attended) before the first forward;
    the trainer re-calibrates at the start of every epoch."""

    def __init__(self, spec: registry.MethodSpec, d_model: int, **hyperparameters: Any):
        super().__init__()
        ok, reason = registry.availability(spec)
        if not ok:
            raise ValueError(f"method {spec.name!r} cannot run here: {reason}")
        registry.check_request(
            spec, causal=True, dtype=torch.float32, device="cpu", head_dim=d_model, key_padding=True
        )
        self.spec = spec
        self.d_model = d_model
        self.hyperparameters = dict(hyperparameters)
        self.w_query = nn.Linear(d_model, d_model, bias=False)
        self.w_key = nn.Linear(d_model, d_model, bias=False)
        self.w_value = nn.Linear(d_model, d_model, bias=False)
        self.w_out = nn.Linear(d_model, d_model)
        self.attn: Any = None
        if not spec.calibrate:
            self._set_attn(registry.build(spec, d_model, 1, **self.hyperparameters))

    def _set_attn(self, attn: Any) -> None:
        if isinstance(attn, nn.Module):
            self.attn = attn  # registered: buffers follow .to() and deepcopy
        else:
            if "attn" in self._modules:
                del self._modules["attn"]
            object.__setattr__(self, "attn", attn)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return tuple(w(x)[:, None] for w in (self.w_query, self.w_key, self.w_value))

    @torch.no_grad()
    def calibrate(self, x: Tensor, key_padding_mask: Tensor | None = None) -> None:
        """Fit the method's state on x (batch, L, D) via ``registry.build`` (no-op for
        methods without ``calibrate``)."""
        if not self.spec.calibrate:
            return
        q, k, v = self._qkv(x)
        self._set_attn(
            registry.build(
                self.spec,
                self.d_model,
                1,
                calibration=(q, k, v),
                calibration_mask=key_padding_mask,
                **self.hyperparameters,
            )
        )

    def forward(
        self, x: Tensor, *, causal: bool = True, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        if self.attn is None:
            raise RuntimeError(
                f"method {self.spec.name!r} needs calibrate(x) on a calibration batch first"
            )
        q, k, v = self._qkv(x)
        out = self.attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
        return self.w_out(out[:, 0])


def make_attention_layer(
    method: str,
    d_model: int,
    *,
    extra: Sequence[str] = (),
    lisa_config: Any = "authors",
    **hyperparameters: Any,
) -> nn.Module:
    """The attention layer for ``method`` (a LISA layer name, a registry name or
    ``module:attr``); ValueError naming the method when it cannot serve causal use.
    ``lisa_config`` (a preset name or a ``LISAConfig``) applies to the LISA layers only."""
    name = canonical_method(method)
    if name == NO_ATTENTION:
        return NoAttention()
    if name in LISA_LAYERS:
        from impls.attention.lisa_layers import LISABase, LISAMini, LISASoft

        cls = {"lisa-base": LISABase, "lisa-soft": LISASoft, "lisa-mini": LISAMini}[name]
        hyperparameters.setdefault("config", lisa_config)
        return cls(d_model, **hyperparameters)
    try:
        spec = registry.get_method(name, extra)
    except registry.PluginError:
        raise
    except ValueError as error:
        if ":" in name or not str(error).startswith("unknown method"):
            raise
        # every name seqrec accepts, not only the registry's
        known = [*LISA_LAYERS, NO_ATTENTION, *(f"{a} (= {b})" for a, b in ALIASES.items())]
        known += [s.name for s in registry.all_methods(extra)]
        raise ValueError(
            f"unknown method {method!r}; known: {', '.join(known)} (or module:attr)"
        ) from None
    return RegistryAttentionLayer(spec, d_model, **hyperparameters)


class SASRec(nn.Module):
    """One-block SASRec with a pluggable attention layer (see the module docstring)."""

    def __init__(
        self,
        num_items: int,
        attention: nn.Module,
        *,
        d_model: int,
        max_len: int,
        dropout: float = 0.1,
    ):
        super().__init__()
        if num_items < 1 or d_model < 1 or max_len < 1:
            raise ValueError("num_items, d_model and max_len must be >= 1")
        self.num_items, self.d_model, self.max_len = num_items, d_model, max_len
        self.item_emb = nn.Embedding(num_items + 1, d_model, padding_idx=0)
        cfg = getattr(attention, "config", None)
        with torch.no_grad():
            if cfg is not None and cfg.item_init == "xavier":
                nn.init.xavier_normal_(self.item_emb.weight)  # std sqrt(2 / (n + 1 + D))
            else:
                self.item_emb.weight.normal_(0.0, d_model**-0.5)
            self.item_emb.weight[0].zero_()
        self.input_scale = d_model**0.5
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.attention = attention
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_model, d_model)
        )

    def embed(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """(dropout(sqrt(D) E[seq]) with padded rows zeroed, mask)."""
        mask = seq == 0
        e = self.dropout(self.item_emb(seq) * self.input_scale) * (~mask)[..., None]
        return e, mask

    def lisa_config(self) -> Any:
        """The attention layer's ``LISAConfig`` (None for non-LISA layers)."""
        return getattr(self.attention, "config", None)

    def forward(self, seq: Tensor) -> Tensor:
        """seq (batch, L) item ids, 0 = padding, L <= max_len -> h (batch, L, D)."""
        if seq.dim() != 2 or seq.shape[1] > self.max_len:
            raise ValueError(f"seq must be (batch, L <= {self.max_len}), got {tuple(seq.shape)}")
        cfg = self.lisa_config()
        if cfg is not None and cfg.quantize_clean_input:
            mask = seq == 0
            keep = (~mask)[..., None]
            clean = self.item_emb(seq) * self.input_scale * keep
            a = self.attention(clean, causal=True, key_padding_mask=mask)
            stream = self.attention.reconstruction if cfg.reconstruction_residual else clean
            e = self.dropout(stream) * keep
        else:
            e, mask = self.embed(seq)
            a = self.attention(e, causal=True, key_padding_mask=mask)
            if cfg is not None and cfg.reconstruction_residual:
                e = self.attention.reconstruction * (~mask)[..., None]
        pos = self.pos_emb(torch.arange(seq.shape[1], device=seq.device))
        h = self.norm1(e + pos + self.dropout(a))
        h = self.norm2(h + self.dropout(self.ffn(h)))
        return h * (~mask)[..., None]

    def item_vectors(self, ids: Tensor) -> Tensor:
        """Target representations T[ids] (..., D). With a LISA layer whose
        ``target_encoder()`` is a quantiser TQ (Mini's target codebook; Base's sequence
        quantiser when ``quantized_targets``): T = TQ(sqrt(D) E[ids]) (straight-through),
        the quantiser encoding in the sequence's scale; otherwise T = sqrt(D) E[ids].
        Both are divided by sqrt(D) (back to E's scale) unless the layer's config has
        ``scale_targets=False`` (the authors'); non-LISA layers: T = E[ids]."""
        cfg = self.lisa_config()
        divide = cfg is None or cfg.scale_targets
        encoder = getattr(self.attention, "target_encoder", None)
        target_quantizer = encoder() if encoder is not None else None
        if target_quantizer is None:
            emb = self.item_emb(ids)
            return emb if divide else emb * self.input_scale
        # Each distinct item is encoded once (a batch scores at most n items, but has
        # batch * L * (1 + negatives) slots); the gather sums gradients over repeats.
        unique, inverse = torch.unique(ids, return_inverse=True)
        emb = self.item_emb(unique) * self.input_scale
        vectors = target_quantizer(emb).reconstruction
        if divide:
            vectors = vectors / self.input_scale
        return vectors[inverse]

    def score(self, h: Tensor, ids: Tensor) -> Tensor:
        """h (..., D), ids (..., m) -> scores (..., m)."""
        return (h[..., None, :] * self.item_vectors(ids)).sum(-1)

    def regularizer(self) -> Tensor | None:
        """LISA-Soft's quantisation penalty from the last forward, already weighted as its
        config says (None for other layers)."""
        return getattr(self.attention, "regularizer", None)
