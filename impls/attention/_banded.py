"""Banded softmax attention: each query attends to keys within a fixed index band.

Shared by sliding-window attention (band over positions) and LSH attention (band over
the bucket-sorted sequence). For query index p the candidate keys are the indices
p' in [p - left, p + right]; a candidate counts only if ``key_ok[p']`` and, when given,
``q_group[p] == k_group[p']`` and (causal) ``k_pos[p'] <= q_pos[p]``::

    s[p, p'] = scale * <q[p], k[p']>      (-inf for non-candidates)
    out[p]   = sum_p' exp(s - m) v[p'] / sum_p' exp(s - m),  m = max_p' s[p, p']
    lse[p]   = m + log sum_p' exp(s - m)  (-inf and out = 0 when no candidate)

Queries are processed in blocks of ``block`` rows; each block sees a key window of
``block + left + right`` indices obtained with ``unfold``, so memory is
O(n * (block + left + right)) instead of O(n^2).
Shapes: q (N, n, d), k (N, n, d), v (N, n, dv), metadata (N, n) -> out (N, n, dv), lse (N, n).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _windows(x: Tensor, left: int, right_pad: int, span: int, block: int, value=0) -> Tensor:
    """(N, n, ...) -> (N, n_blocks, span, ...) sliding windows with step ``block``."""
    pad = [0, 0] * (x.dim() - 2) + [left, right_pad]
    xp = F.pad(x, pad, value=value)
    w = xp.unfold(1, span, block)  # (N, nb, ..., span)
    return w.movedim(-1, 2)


def banded_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    left: int,
    right: int,
    block: int,
    scale: float,
    key_ok: Tensor,
    q_pos: Tensor | None = None,
    k_pos: Tensor | None = None,
    q_group: Tensor | None = None,
    k_group: Tensor | None = None,
    causal: bool = False,
) -> tuple[Tensor, Tensor]:
    """Return (out, lse) of banded attention (see the module docstring)."""
    n_items, n, _ = q.shape
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    tail = n_blocks * block - n
    span = block + left + right
    right_pad = tail + right

    qb = F.pad(q, (0, 0, 0, tail)).reshape(n_items, n_blocks, block, q.shape[-1])
    kw = _windows(k, left, right_pad, span, block)  # (N, nb, span, d)
    vw = _windows(v, left, right_pad, span, block)  # (N, nb, span, dv)
    ok = _windows(key_ok, left, right_pad, span, block, value=False)  # (N, nb, span)

    r = torch.arange(block, device=q.device)[:, None]
    s = torch.arange(span, device=q.device)[None, :]
    band = (s - r >= 0) & (s - r <= left + right)  # (block, span)
    allowed = band & ok[:, :, None, :]  # (N, nb, block, span)
    if q_group is not None and k_group is not None:
        qg = F.pad(q_group, (0, tail), value=-1).reshape(n_items, n_blocks, block)
        kg = _windows(k_group, left, right_pad, span, block, value=-2)
        allowed = allowed & (qg[..., :, None] == kg[..., None, :])
    if causal:
        if q_pos is None or k_pos is None:
            raise ValueError("banded_attention: causal needs q_pos and k_pos")
        qp = F.pad(q_pos, (0, tail), value=-1).reshape(n_items, n_blocks, block)
        kp = _windows(k_pos, left, right_pad, span, block, value=0)
        allowed = allowed & (kp[..., None, :] <= qp[..., :, None])

    scores = torch.einsum("nbid,nbjd->nbij", qb, kw) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(scores - row_max)
    total = weights.sum(dim=-1, keepdim=True)
    has_key = total > 0
    out = torch.einsum("nbij,nbjd->nbid", weights, vw)
    out = out / torch.where(has_key, total, torch.ones_like(total))
    lse = torch.where(
        has_key,
        row_max + torch.log(torch.where(has_key, total, torch.ones_like(total))),
        torch.full_like(total, float("-inf")),
    )
    out = out.reshape(n_items, n_blocks * block, -1)[:, :n]
    lse = lse.reshape(n_items, n_blocks * block)[:, :n]
    return out, lse
