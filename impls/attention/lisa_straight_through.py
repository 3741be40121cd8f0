"""Straight-through lookups: a hard row gather in the forward pass, the gradient of the
soft mixture in the backward pass.

For a table T (B, W, X) (one (W, X) table per codebook b), hard codes w (n, B, L) and soft
codes p (n, B, L, W)::

    forward:   rows[n, b, l] = T[b, w[n, b, l]]                       (n, B, L, X)
    backward:  dL/dp[n, b, l] = T[b] @ dL/drows[n, b, l]              (as if rows = p @ T[b])
               dL/dT[b, u]    = sum over (n, l) with w[n, b, l] = u of dL/drows[n, b, l]

This is the estimator ``rows = (onehot(w) + p - p.detach()) @ T[b]`` (whose forward value is
the hard row and whose table gradient is that of the hard lookup) without forming the
(n, B, L, W) one-hot or multiplying by it: the forward pass is a gather instead of a
(W x X) matrix product per position, and the table gradient a scatter-add.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["straight_through_rows"]


class _StraightThroughRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: Tensor, codes: Tensor, probs: Tensor) -> Tensor:
        books = torch.arange(table.shape[0], device=table.device)[None, :, None]
        ctx.save_for_backward(table, codes)
        return table[books, codes]

    @staticmethod
    def backward(ctx, grad_rows: Tensor):
        table, codes = ctx.saved_tensors
        grad_table = grad_probs = None
        if ctx.needs_input_grad[0]:
            books = torch.arange(table.shape[0], device=table.device)[None, :, None]
            grad_table = torch.zeros_like(table).index_put_(
                (books.expand_as(codes), codes), grad_rows, accumulate=True
            )
        if ctx.needs_input_grad[2]:
            grad_probs = torch.einsum("nblx,bwx->nblw", grad_rows, table)
        return grad_table, None, grad_probs


def straight_through_rows(table: Tensor, codes: Tensor, probs: Tensor | None = None) -> Tensor:
    """``table[b, codes[n, b, l]]`` with a straight-through gradient into ``probs``.

    Args:
        table: (B, W, X) float.
        codes: (n, B, L) int64 hard codes in [0, W).
        probs: (n, B, L, W) soft codes that take the gradient (see the module docstring),
            or None for a plain gather.
    Returns:
        (n, B, L, X).
    """
    if probs is None:
        books = torch.arange(table.shape[0], device=table.device)[None, :, None]
        return table[books, codes]
    return _StraightThroughRows.apply(table, codes, probs)
