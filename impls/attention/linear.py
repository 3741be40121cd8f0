"""Linear attention (Katharopoulos, Vyas, Pappas, Fleuret 2020, "Transformers are RNNs").

Softmax similarity is replaced by a kernel phi(q)^T phi(k) with phi(x) = elu(x) + 1 > 0::

    out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i),
    S_i = sum_{j in vis(i)} phi(k_j) v_j^T   (d x dv),   z_i = sum_{j in vis(i)} phi(k_j),

vis(i) = all unpadded keys (bidirectional) or unpadded j <= i (causal). Causal attention
is computed by CHUNKED prefix sums: per chunk of C positions, the inter-chunk part uses
the running (S, z) of earlier chunks and the intra-chunk part a masked (C x C) product,
so no (L, d, dv) tensor is ever built. Time O(L d dv), memory O(L (d + dv) + C^2 + d dv).
There is no softmax, hence no scale and no max subtraction; phi > 0 keeps z > 0 whenever
a key is visible, and rows with no visible key return zeros.

It equals ``reference.exact_attention`` with scale 0 and the additive bias
log(phi(q_i)^T phi(k_j)). Shapes: q/k (batch, heads, Lq|Lk, d), v (batch, heads, Lk, dv)
-> (batch, heads, Lq, dv). Half inputs are computed in float32 and cast back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from impls.attention._validation import check_attention_inputs, compute_dtype
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = ["LinearAttention", "elu_feature_map", "linear_attention", "kernel_attention"]


def elu_feature_map(x: Tensor) -> Tensor:
    """phi(x) = elu(x) + 1, elementwise, strictly positive."""
    return F.elu(x) + 1.0


def _divide(num: Tensor, den: Tensor) -> Tensor:
    """num / den[..., None], and zeros where den == 0 (no visible key), gradient-safe."""
    ok = den > 0
    out = num / torch.where(ok, den, torch.ones_like(den))[..., None]
    return torch.where(ok[..., None], out, torch.zeros_like(out))


def kernel_attention(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    chunk_size: int = 64,
    k_factor: Tensor | None = None,
) -> Tensor:
    """Normalised kernel attention on non-negative features.

    phi_q (N, H, Lq, m), phi_k (N, H, Lk, m) (padded keys already zeroed), v (N, H, Lk, dv).
    Optional per-position log-factors (causal only, used by Performer's stabiliser): for
    query i, key j <= i is weighted by exp(k_factor_j - k_factor_i); k_factor must be
    non-decreasing in j, so every factor applied is <= 1 (no overflow).
    """
    if not causal:
        state = torch.einsum("nhjm,nhje->nhme", phi_k, v)
        num = torch.einsum("nhim,nhme->nhie", phi_q, state)
        den = torch.einsum("nhim,nhm->nhi", phi_q, phi_k.sum(dim=2))
        return _divide(num, den)
    batch, heads, length, m = phi_q.shape
    dv = v.shape[-1]
    state = phi_q.new_zeros(batch, heads, m, dv)
    norm = phi_q.new_zeros(batch, heads, m)
    level = None  # log-factor the running state is expressed at (Performer only)
    outs = []
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        fq, fk, vc = phi_q[:, :, start:stop], phi_k[:, :, start:stop], v[:, :, start:stop]
        c = stop - start
        tril = torch.ones(c, c, dtype=torch.bool, device=v.device).tril()
        scores = torch.einsum("nhim,nhjm->nhij", fq, fk)
        if k_factor is None:
            weights = scores * tril
            inter_num = torch.einsum("nhim,nhme->nhie", fq, state)
            inter_den = torch.einsum("nhim,nhm->nhi", fq, norm)
        else:
            kf = k_factor[:, :, start:stop]  # (N, H, c)
            diff = (kf[..., None, :] - kf[..., :, None]).masked_fill(~tril, float("-inf"))
            weights = scores * torch.exp(diff)
            if level is None:
                inter_num = fq.new_zeros(batch, heads, c, dv)
                inter_den = fq.new_zeros(batch, heads, c)
            else:
                carry = torch.exp(level[..., None] - kf)  # (N, H, c), <= 1
                inter_num = torch.einsum("nhim,nhme->nhie", fq, state) * carry[..., None]
                inter_den = torch.einsum("nhim,nhm->nhi", fq, norm) * carry
        num = inter_num + torch.einsum("nhij,nhje->nhie", weights, vc)
        den = inter_den + weights.sum(dim=-1)
        outs.append(_divide(num, den))
        if stop < length:
            if k_factor is None:
                state = state + torch.einsum("nhjm,nhje->nhme", fk, vc)
                norm = norm + fk.sum(dim=2)
            else:
                new_level = kf[..., -1]  # factors are non-decreasing: the chunk's maximum
                decay = torch.exp(kf - new_level[..., None])  # (N, H, c), <= 1
                fk_scaled = fk * decay[..., None]
                if level is not None:
                    shrink = torch.exp(level - new_level)
                    state = state * shrink[..., None, None]
                    norm = norm * shrink[..., None]
                state = state + torch.einsum("nhjm,nhje->nhme", fk_scaled, vc)
                norm = norm + fk_scaled.sum(dim=2)
                level = new_level
    return torch.cat(outs, dim=2)


def linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    chunk_size: int = 64,
) -> Tensor:
    """Linear attention with elu+1 features (see the module docstring)."""
    check_attention_inputs(
        q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="linear"
    )
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"linear: chunk_size must be an int >= 1, got {chunk_size!r}")
    ct = compute_dtype(q.dtype)
    phi_q = elu_feature_map(q.to(ct))
    phi_k = elu_feature_map(k.to(ct))
    if key_padding_mask is not None:
        phi_k = phi_k.masked_fill(key_padding_mask[:, None, :, None], 0.0)
    out = kernel_attention(phi_q, phi_k, v.to(ct), causal=causal, chunk_size=chunk_size)
    return out.to(q.dtype)


class LinearAttention(nn.Module):
    """Module form: ``LinearAttention(dim, heads, chunk_size=64)(q, k, v, causal=...)``."""

    def __init__(self, dim: int | None = None, heads: int | None = None, *, chunk_size: int = 64):
        super().__init__()
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"linear: chunk_size must be an int >= 1, got {chunk_size!r}")
        self.chunk_size = chunk_size

    def forward(self, q, k, v, *, causal: bool = False, key_padding_mask=None) -> Tensor:
        return linear_attention(
            q, k, v, causal=causal, key_padding_mask=key_padding_mask, chunk_size=self.chunk_size
        )


def analytic_cost(query: CostQuery) -> Cost:
    """Chunked linear attention (chunk C): the (d, d) state update and read-out cost
    4 L d^2, the causal within-chunk products 4 L C d, the feature maps O(L d); working
    memory a few (L, d) buffers plus one chunk's state."""
    n, d = query.length, query.dim
    chunk = min(query.hp.get("chunk_size", 64), n)
    per_row = 4.0 * n * d * d + 2.0 * n * d + (4.0 * n * chunk * d if query.causal else 0.0)
    grad = 3 if query.backward else 1
    working = query.itemsize * query.rows * grad * (8 * d * n + 4 * chunk * d * d // 8)
    flops = query.rows * query.passes * per_row
    return Cost(flops, compulsory_traffic(query), int(working + SLACK_BYTES))
