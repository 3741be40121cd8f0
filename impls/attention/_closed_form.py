"""Bidirectional kernel attention in closed form, with a written-out backward.

For non-negative feature maps phi (elu + 1 for linear attention, positive random
features for Performer) and all unpadded keys visible::

    S = phi(K)^T V  (m, dv),   z = phi(K)^T 1  (m),   out_i = phi(q_i)^T S / phi(q_i)^T z

(0 for a row with no visible key). The keys are reduced to (S, z) before any query
feature exists, so without a backward ahead one (L, m) feature tensor is alive at a time
and the division is in place. With a backward, ``_ClosedForm`` saves the two feature
tensors and holds one more (L, m) gradient at a time; with g = dLoss/d out::

    g_num = g / den,   g_den = -(g . out) / den            (0 for empty rows)
    dphi_q = g_num S^T + g_den z^T,   dS = phi_q^T g_num,   dz = phi_q^T g_den
    dphi_k = V dS^T + 1 dz^T,         dV = phi_k dS

and each feature map turns dphi into the gradient of its input in place
(``FeatureMap.input_grad``). Autograd over the same operations keeps about twice as many
(L, m) tensors alive at its peak and makes more passes over them.

Shapes: q (N, H, Lq, d), k (N, H, Lk, d), v (N, H, Lk, dv) -> (N, H, Lq, dv); inside, the
N x H = R rows are one batch: (R, L, .) tensors and ``padded`` (R, Lk) bool, True for a
padded key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["ELU_FEATURES", "IDENTITY_FEATURES", "FeatureMap", "closed_form_attention"]


class FeatureMap:
    """A non-negative feature map for ``closed_form_attention``.

    ``keys(k, padded)`` and ``queries(q)`` return new (R, L, m) feature tensors (padded
    keys exactly 0); ``input_grad(dphi, phi, x)`` returns dLoss/dx given dLoss/dphi and
    may overwrite ``dphi``. Every per-row constant a map divides out (a stabiliser) is
    treated as a constant: it cancels in the ratio, so its gradient is zero."""

    def keys(self, k: Tensor, padded: Tensor | None) -> Tensor:
        raise NotImplementedError

    def queries(self, q: Tensor) -> Tensor:
        raise NotImplementedError

    def input_grad(self, dphi: Tensor, phi: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError


class _Identity(FeatureMap):
    """Features given as they are (padded keys already zeroed by the caller)."""

    def keys(self, k, padded):
        return k

    def queries(self, q):
        return q

    def input_grad(self, dphi, phi, x):
        return dphi


class _Elu(FeatureMap):
    """phi(x) = elu(x) + 1; its derivative is 1 where x > 0 and exp(x) = phi elsewhere,
    that is min(phi, 1): the backward needs the features only."""

    def keys(self, k, padded):
        phi = F.elu(k).add_(1.0)
        return phi if padded is None else phi.masked_fill_(padded[..., None], 0.0)

    def queries(self, q):
        return F.elu(q).add_(1.0)

    def input_grad(self, dphi, phi, x):
        return dphi.mul_(phi.clamp(max=1.0))


IDENTITY_FEATURES: FeatureMap = _Identity()
ELU_FEATURES: FeatureMap = _Elu()


def _parts(q, k, v, padded, features: FeatureMap, keep: bool):
    phi_k = features.keys(k, padded)
    state = torch.bmm(phi_k.transpose(1, 2), v)  # (R, m, dv)
    norm = phi_k.sum(dim=1)  # (R, m)
    if not keep:
        del phi_k
    phi_q = features.queries(q)
    out = torch.bmm(phi_q, state)
    den = torch.bmm(phi_q, norm[..., None])  # (R, Lq, 1)
    empty = den <= 0
    den.masked_fill_(empty, 1.0)
    out = out.div_(den).masked_fill_(empty, 0.0)
    if not keep:
        return out, None
    return out, (phi_q, phi_k, state, norm, den, empty)


class _ClosedForm(torch.autograd.Function):
    """``closed_form_attention`` with the backward of the module docstring."""

    @staticmethod
    def forward(ctx, q, k, v, padded, features):
        out, (phi_q, phi_k, state, norm, den, empty) = _parts(q, k, v, padded, features, True)
        ctx.save_for_backward(q, k, v, out, phi_q, phi_k, state, norm, den, empty)
        ctx.features = features
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        q, k, v, out, phi_q, phi_k, state, norm, den, empty = ctx.saved_tensors
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        g_num = grad / den
        g_num.masked_fill_(empty, 0.0)
        g_den = -(g_num * out).sum(dim=-1, keepdim=True)  # (R, Lq, 1)
        grad_q = grad_k = grad_v = None
        if need_q:
            dphi_q = torch.bmm(g_num, state.transpose(1, 2))
            dphi_q.baddbmm_(g_den, norm[:, None, :])
            grad_q = ctx.features.input_grad(dphi_q, phi_q, q)
            del dphi_q
        if need_k or need_v:
            d_state = torch.bmm(phi_q.transpose(1, 2), g_num)  # (R, m, dv)
        if need_v:
            grad_v = torch.bmm(phi_k, d_state)
        if need_k:
            d_norm = torch.bmm(phi_q.transpose(1, 2), g_den)  # (R, m, 1)
            dphi_k = torch.bmm(v, d_state.transpose(1, 2)).add_(d_norm.transpose(1, 2))
            grad_k = ctx.features.input_grad(dphi_k, phi_k, k)
        return grad_q, grad_k, grad_v, None, None


def closed_form_attention(
    q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, features: FeatureMap
) -> Tensor:
    """Bidirectional kernel attention of the module docstring: q (N, H, Lq, d), k (N, H,
    Lk, d), v (N, H, Lk, dv), ``key_padding_mask`` (N, Lk) or None -> (N, H, Lq, dv). The
    feature maps see the (R, L, d) rows and the (R, Lk) padding. The written-out backward
    when a gradient is needed, else the single-feature-tensor forward."""
    batch, heads, lq_len, _ = q.shape
    rows = batch * heads
    padded = None
    if key_padding_mask is not None:
        padded = key_padding_mask[:, None, :].expand(batch, heads, -1).reshape(rows, -1)
    q3, k3, v3 = (t.reshape(rows, t.shape[2], t.shape[3]) for t in (q, k, v))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        out = _ClosedForm.apply(q3, k3, v3, padded, features)
    else:
        out = _parts(q3, k3, v3, padded, features, False)[0]
    return out.view(batch, heads, lq_len, -1)
