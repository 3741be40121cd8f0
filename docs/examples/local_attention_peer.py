"""local-attention's ``LocalAttention`` (lucidrains/local-attention, a maintained and
widely used sliding-window attention) as an outside method, for ``--plugin``:

    pip install -e '.[peers]'        # or: pip install local-attention
    PYTHONPATH=docs/examples python -m harness conformance \
        --plugin local_attention_peer:SPEC --method local_attention
    PYTHONPATH=docs/examples python -m harness bench --plugin local_attention_peer:SPEC \
        --methods local_window local_attention --modes causal --passes forward

The operator is theirs, unchanged, configured to compute the project's ``local_window``
function (window w = 64): softmax attention over the keys with i - w < j <= i (causal)
or |i - j| < w (bidirectional), scale 1/sqrt(d). Their form: the sequence is cut into
blocks of ``window_size`` rows (padded to a multiple of it); each block's queries score
against their own block and ``look_backward`` = 1 block before it (and ``look_forward``
= 1 after it when bidirectional) through one einsum over a gathered (blocks, 2 or 3
blocks) copy of the keys and values; the band and padding are masked on those tiles
(``exact_windowsize``), then softmax and a second einsum. With ``exact_windowsize`` a
query sees ``window_size`` keys back (``window_size`` + 1 keys with itself), so
``window_size`` = w - 1 gives the w keys of ``local_window``. Rotary embeddings are
off (``use_rotary_pos_emb=False``; they are on by default and would change the function).
Their ``autopad`` pads q, k and v with zero rows to a multiple of the block but masks
those padded keys only when a mask is passed, so bidirectional calls pass an all-true
mask (without it, every length that is not a multiple of 63 attends to zero keys).
Float32 and float64, no key padding: with their mask, a query whose keys are all padded
gets the mean of the padded values instead of zeros, which the conformance suite's
convention rejects, so padding is declared unsupported.

The project's own ``local_window`` computes the same function; see docs/peers.md,
"A maintained implementation: local-attention", for the comparison.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.conformance import validate_qkv
from impls.registry import Capabilities, MethodSpec

__all__ = ["SPEC", "LocalAttentionPeer"]


class LocalAttentionPeer(nn.Module):
    """``attn(q, k, v, causal=...)`` through local-attention's ``LocalAttention`` with
    ``window_size = window - 1``, ``exact_windowsize=True``, ``autopad=True``, no rotary
    embedding; one causal and one bidirectional instance (they hold no parameters)."""

    def __init__(self, dim: int | None = None, heads: int | None = None, *, window: int = 64):
        super().__init__()
        if not isinstance(window, int) or window < 2:
            raise ValueError(f"local_attention: window must be an int >= 2, got {window!r}")
        self.window = window
        self._modules_by_mode: dict[bool, nn.Module] = {}

    def _attention(self, causal: bool) -> nn.Module:
        if causal not in self._modules_by_mode:
            from local_attention import LocalAttention

            self._modules_by_mode[causal] = LocalAttention(
                window_size=self.window - 1,
                causal=causal,
                look_backward=1,
                look_forward=0 if causal else 1,
                exact_windowsize=True,
                autopad=True,
                use_rotary_pos_emb=False,
            )
        return self._modules_by_mode[causal]

    def forward(self, q: Tensor, k: Tensor, v: Tensor, *, causal=False, key_padding_mask=None):
        validate_qkv(q, k, v, causal=causal, key_padding_mask=key_padding_mask,
                     method="local_attention")  # fmt: skip
        if key_padding_mask is not None:
            raise ValueError("local_attention: key_padding_mask is not supported")
        # their autopad pads q, k and v with zero rows but masks the padded keys only where
        # a mask is passed (causal attention never sees them): an all-True mask, the rows
        # of one sequence, so that bidirectional rows ignore the padding
        keep = None if causal else q.new_ones(q.shape[0], q.shape[2], dtype=torch.bool)
        return self._attention(bool(causal))(q, k, v, mask=keep)

    def extra_repr(self) -> str:
        return f"window={self.window}"


def _band_oracle(attn, q, k, v, *, causal, key_padding_mask):
    """What the oracle says the method must return: exact attention with bias -inf
    outside the band |i - j| < window (the causal mask adds j <= i)."""
    from reference.attention import exact_attention

    i = torch.arange(q.shape[2], device=q.device)
    band = (i[:, None] - i[None, :]).abs() < attn.window
    bias = torch.zeros(band.shape, dtype=q.dtype, device=q.device).masked_fill(~band, -torch.inf)
    return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask, bias=bias)


def _cost(query):
    """The analytic cost of the project's ``local_window`` (same window, same tiles)."""
    from impls.attention.local_window import analytic_cost

    return analytic_cost(query)


def _available() -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec("local_attention") is None:
        return False, "local-attention is not installed (pip install local-attention)"
    return True, ""


SPEC = MethodSpec(
    name="local_attention",
    factory=LocalAttentionPeer,
    cost=_cost,
    exact=False,
    summary="lucidrains/local-attention LocalAttention (exact window of 64), unchanged",
    paper="Beltagy et al. 2020 (sliding window)",
    capabilities=Capabilities(
        key_padding=False,
        same_length=True,
        dtypes=(torch.float32, torch.float64),
        devices=("cpu",),
    ),
    oracle_identity="always: the oracle with bias -inf outside the band |i - j| < window",
    oracle_reference=_band_oracle,
    hyperparameters={"window": 64},
    budget="window",
    budget_values=(2, 8, 32, 64),
    time_exponent=1.0,
    memory_exponent=1.0,
    availability=_available,
)
