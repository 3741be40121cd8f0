"""performer-pytorch's ``FastAttention`` (lucidrains/performer-pytorch, a maintained and
widely used Performer) as an outside method, for ``--plugin``:

    pip install performer-pytorch
    PYTHONPATH=docs/examples python -m harness conformance \
        --plugin performer_pytorch_peer:SPEC --method performer_pytorch
    PYTHONPATH=docs/examples python -m harness bench --plugin performer_pytorch_peer:SPEC \
        --methods performer performer_pytorch --modes causal --passes forward

The operator is theirs, unchanged: FAVOR+ features
phi(x) = m^-1/2 (exp(w_r . x' - |x'|^2 / 2 - c) + 1e-4), x' = x d^-1/4, m = 256 random
orthogonal features drawn once per instance (seeded here), c the maximum of w . x' over a
query's own features, or over all positions and features for keys; causal attention on a
CPU by their chunked prefix sums, ``out_i = phi(q_i)^T S_i / phi(q_i)^T (z_i + 1e-6)``.
Float32 only, no key padding (FastAttention takes no mask): both declared below.

The project's own ``performer`` computes the same kernel with a causal stabiliser; see
docs/peers.md, "A maintained implementation: performer-pytorch", for the comparison.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.conformance import validate_qkv
from impls.registry import Capabilities, MethodSpec

__all__ = ["SPEC", "PerformerPytorch"]


class PerformerPytorch(nn.Module):
    """``attn(q, k, v, causal=...)``: FastAttention built on the first call for the head
    width of q (their projection is drawn for one width), seeded, and the same random
    features for the causal and the bidirectional call."""

    def __init__(self, dim: int | None = None, heads: int | None = None, *, nb_features=256):
        super().__init__()
        self.nb_features = nb_features
        self.by_width = nn.ModuleDict()

    def _pair(self, width: int) -> nn.ModuleDict:
        from performer_pytorch import FastAttention

        key = str(width)
        if key not in self.by_width:  # normal tensors even when first called for inference
            with torch.inference_mode(False), torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                causal = FastAttention(width, nb_features=self.nb_features, causal=True)
                full = FastAttention(width, nb_features=self.nb_features, causal=False)
                full.projection_matrix = causal.projection_matrix
            self.by_width[key] = nn.ModuleDict({"causal": causal, "full": full})
        return self.by_width[key]

    def forward(self, q: Tensor, k: Tensor, v: Tensor, *, causal=False, key_padding_mask=None):
        validate_qkv(q, k, v, causal=causal, key_padding_mask=key_padding_mask,
                     method="performer_pytorch")  # fmt: skip
        if key_padding_mask is not None:
            raise ValueError("performer_pytorch: key_padding_mask is not supported")
        return self._pair(q.shape[-1])["causal" if causal else "full"](q, k, v)


def _cost(query):
    """The analytic cost of the project's ``performer`` (same features, same products)."""
    from impls.attention.performer import analytic_cost

    return analytic_cost(query)


def _available() -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec("performer_pytorch") is None:
        return False, "performer-pytorch is not installed (pip install performer-pytorch)"
    return True, ""


SPEC = MethodSpec(
    name="performer_pytorch",
    factory=PerformerPytorch,
    cost=_cost,
    exact=False,
    summary="lucidrains/performer-pytorch FastAttention (FAVOR+, 256 features), unchanged",
    paper="Choromanski et al. 2021",
    capabilities=Capabilities(key_padding=False, dtypes=(torch.float32,), devices=("cpu",)),
    time_exponent=1.0,
    memory_exponent=1.0,
    availability=_available,
)
