"""LISA's quantiser: residual additive quantisation with a learned bilinear metric.

B codebooks C[b] of W full-dimension codewords, shape (B, W, D). An embedding x (..., D) is
encoded residually (Wu et al. 2021)::

    r_1 = x
    logits_b = (r_b M) C[b]^T                    M: (D, D) learned metric, identity at init
    w_b = argmax_w logits_b[w]                   hard code
    p_b = softmax(logits_b / tau)                soft code (tau = 0.7 in the authors' code)
    r_{b+1} = r_b - C[b, w_b]                    hard residual (the default)
    x_hat = sum_b C[b, w_b]                      reconstruction

With ``soft_residual=True`` (the authors' LISA-Soft) the residual and the reconstruction
use the soft codes instead: ``r_{b+1} = r_b - p_b C[b]`` and ``x_hat = sum_b p_b C[b]``
(plain softmax mixtures, differentiable, no straight-through); codes are still the argmaxes.

Training is straight-through: the forward pass uses the one-hot of w_b, the backward pass
the gradient of p_b (``one_hot = hard + p - p.detach()``). No Gumbel noise is added.
The chosen codeword is gathered (``straight_through_rows``), not multiplied out of a
one-hot, and the metric is folded into each codebook (logits = r_b (M C[b]^T)).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from impls.attention.lisa_straight_through import straight_through_rows

__all__ = ["QuantizerOutput", "ResidualQuantizer"]


class QuantizerOutput(NamedTuple):
    """codes: (..., B) int64; probs: (..., B, W) soft codes;
    reconstruction: (..., D) = sum_b C[b, codes[b]] (with straight-through gradients), or
    sum_b probs[b] @ C[b] for a quantiser with ``soft_residual``."""

    codes: Tensor
    probs: Tensor
    reconstruction: Tensor

    @property
    def one_hot(self) -> Tensor:
        """(..., B, W) straight-through one-hot: forward value one-hot, gradient of probs."""
        hard = torch.nn.functional.one_hot(self.codes, self.probs.shape[-1])
        return hard.to(self.probs.dtype) + self.probs - self.probs.detach()


class ResidualQuantizer(nn.Module):
    """Residual additive quantiser with a learned bilinear metric (see module docstring).

    Args:
        dim: embedding dimension D.
        num_codebooks: B.
        num_codewords: W per codebook.
        tau: softmax temperature of the soft codes / straight-through gradient.
        soft_residual: subtract (and reconstruct with) the soft mixture p_b C[b] instead of
            the chosen codeword C[b, w_b] (the authors' LISA-Soft; default False).
    """

    def __init__(
        self,
        dim: int,
        num_codebooks: int = 8,
        num_codewords: int = 128,
        tau: float = 0.7,
        *,
        soft_residual: bool = False,
    ):
        super().__init__()
        for name, value in (
            ("dim", dim),
            ("num_codebooks", num_codebooks),
            ("num_codewords", num_codewords),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not (isinstance(tau, (int, float)) and tau > 0):
            raise ValueError(f"tau must be a positive number, got {tau!r}")
        self.dim, self.num_codebooks, self.num_codewords, self.tau = (
            dim,
            num_codebooks,
            num_codewords,
            float(tau),
        )
        self.soft_residual = bool(soft_residual)
        # Later codebooks quantise smaller residuals: scale their initial spread down.
        decay = 0.5 ** torch.arange(num_codebooks, dtype=torch.float32)[:, None, None]
        self.codebooks = nn.Parameter(torch.randn(num_codebooks, num_codewords, dim) * decay)
        self.metric = nn.Parameter(torch.eye(dim))

    def forward(self, x: Tensor) -> QuantizerOutput:
        """x: (..., D) -> QuantizerOutput (see its docstring for shapes)."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point tensor of shape (..., D)")
        if x.dim() < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have last dim D={self.dim}, got shape {tuple(x.shape)}")
        codebooks = self.codebooks.to(x.dtype)
        metric = self.metric.to(x.dtype)
        projections = metric @ codebooks.transpose(1, 2)  # (B, D, W): M C[b]^T
        flat = x.reshape(-1, 1, 1, self.dim)  # (N, 1, 1, D): one "book" per lookup
        residual = flat
        codes, probs = [], []
        reconstruction = torch.zeros_like(flat)
        for b in range(self.num_codebooks):
            logits = residual @ projections[b]  # (N, 1, 1, W)
            p = torch.softmax(logits / self.tau, dim=-1)  # softmax subtracts the row max
            code = logits.argmax(dim=-1)
            if self.soft_residual:
                chosen = p @ codebooks[b]  # sum_w p_b(w) C[b, w]
            else:
                chosen = straight_through_rows(codebooks[b][None], code, p)  # C[b, code]
            residual = residual - chosen
            reconstruction = reconstruction + chosen
            codes.append(code)
            probs.append(p)
        lead = x.shape[:-1]
        return QuantizerOutput(
            codes=torch.cat(codes, dim=-1).reshape(*lead, self.num_codebooks),
            probs=torch.cat(probs, dim=-2).reshape(*lead, self.num_codebooks, -1),
            reconstruction=reconstruction.reshape(x.shape),
        )
