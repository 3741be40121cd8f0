"""Performer FAVOR+ attention (Choromanski et al. 2021, "Rethinking Attention with Performers").

Positive random features approximate the softmax kernel exp(<q, k> / sqrt(d)): with
x' = x / d^(1/4) and rows w_r of a random matrix W (m x d)::

    phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m),     E[phi(q)^T phi(k)] = exp(<q, k> / sqrt(d)).

W has orthogonal rows in blocks of d (QR of a Gaussian matrix), each row rescaled by the
norm of an independent Gaussian vector, so the rows keep the marginal N(0, I) law
("positive orthogonal random features"). Attention is then kernel attention
out_i = phi(q_i)^T S_i / phi(q_i)^T z_i (see ``impls.attention.linear``).

Form: the feature maps are one GEMM each (the |x'|^2 / 2 term fused in as the GEMM's
bias, logits in base-2 units so that the exponential is exp2, the fast one on the CPU),
and causal attention is the chunk-parallel scan of ``impls.attention.linear``: all chunk
states (m x dv) in one batched GEMM, a prefix over chunks rescaled per chunk, the
masked (C x C) intra-chunk product and the state read-out as batched GEMMs, with a
written-out backward that forms the chunk states again rather than keeping them; the
causal feature maps have their own written-out backward (``_CausalFeatures``: one (L, m)
temporary). At L = 65,536 (m = 256, d = dv = 128, one head) causal forward+backward
peaks at 449 MiB. Without a backward ahead and with more than ``SEGMENT_CHUNKS`` chunks
per row, the features, the running key level and the stabiliser's factors are formed one
segment at a time (``_segmented_causal``), so no (L, m) feature tensor exists: the
causal forward's peak at 16,384 is 31 MiB against 66 with whole-sequence features.
That is the best known CPU form for the same reasons as linear
attention (BLAS-3 for all O(L m d) work, no per-position loop, no (L, m, dv) tensor);
it is what the causal "prefix sums" of the paper become when computed in chunks. Time
O(L m (d + dv) + L C (m + dv)), memory O(L (m + d) + L C + (L/C) m dv); C = 64 measured
best at m = 256, d = 128. Bidirectional attention is the closed form
phi_q (phi_k^T v) / phi_q (phi_k^T 1) of ``impls.attention._closed_form``: the keys
reduced to their (m x dv) state before any query feature exists (one (L, m) tensor alive
at a time without a backward ahead), and a written-out backward that saves the two
feature tensors and holds one more (L, m) gradient at a time, the feature map's own
gradient formed in place (``_FavorFeatures``). At L = 65,536 (m = 256, d = dv = 128, one
head, 2 threads) the measured peak is 97 MiB forward and 385 MiB forward+backward,
against 257 and 576 MiB for autograd over the same ops and 256 and 449 MiB for
performer-pytorch's FastAttention; forward+backward takes 0.41 s against 0.87 s and
0.90 s.

Stabiliser (exp overflows otherwise): each query's features are divided by
exp(max_r logit_r) (a per-query constant: it cancels in the ratio). Keys use a constant
that must not look at the future: key j is expressed relative to m_j = max over keys
j' <= j and features r of its logits (a running maximum), and query i combines key j with
the factor exp(m_j - m_i) <= 1, which restores the common scale exactly. In the chunked
scan every chunk's state is kept relative to the level at the chunk's end and carried
to the next chunk with a factor <= 1, and each query reads it with a factor <= 1, so no
factor above 1 is ever formed, at any L. Bidirectional attention uses the maximum over
all unpadded keys. The stabilisers are detached: they cancel mathematically, so their
gradient is zero.

Equals ``reference.exact_attention`` with scale 0 and bias log(phi(q_i)^T phi(k_j)) for the
module's fixed W, and its error against softmax attention falls as m grows.
Shapes: q/k (batch, heads, L, d), v (batch, heads, L, dv) -> (batch, heads, L, dv).
``redraw()`` regenerates W from ``seed``; the same seed gives the same W.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from impls.attention._closed_form import FeatureMap, closed_form_attention
from impls.attention._validation import check_attention_inputs, compute_dtype
from impls.attention.linear import (
    chunked_kernel_cost,
    kernel_attention,
    runs_segmented,
    scan_segments,
)
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = ["PerformerAttention", "orthogonal_random_features"]

_FLOOR = -1e30  # stand-in for "no key yet" in the running maximum (finite: no inf - inf)


def orthogonal_random_features(num_features: int, dim: int, seed: int) -> Tensor:
    """(num_features, dim) float64 matrix of block-orthogonal rows with chi(dim) norms."""
    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(-(-num_features // dim)):
        gaussian = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
        ortho, _ = torch.linalg.qr(gaussian)
        blocks.append(ortho.T)
    rows = torch.cat(blocks, dim=0)[:num_features]
    norms = torch.randn(num_features, dim, generator=gen, dtype=torch.float64).norm(dim=1)
    return rows * norms[:, None]


class PerformerAttention(nn.Module):
    """FAVOR+ attention; ``PerformerAttention(dim, heads, nb_features=256, seed=0)``.

    One feature matrix is shared by all heads (so heads are treated identically).
    """

    def __init__(
        self,
        dim: int,
        heads: int | None = None,
        *,
        nb_features: int = 256,
        seed: int = 0,
        chunk_size: int = 64,
    ):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"performer: dim must be an int >= 1, got {dim!r}")
        if not isinstance(nb_features, int) or nb_features < 1:
            raise ValueError(f"performer: nb_features must be an int >= 1, got {nb_features!r}")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"performer: chunk_size must be an int >= 1, got {chunk_size!r}")
        self.dim, self.nb_features, self.seed, self.chunk_size = dim, nb_features, seed, chunk_size
        self.register_buffer("projection", torch.empty(nb_features, dim, dtype=torch.float64))
        self.redraw()

    @torch.no_grad()
    def redraw(self, seed: int | None = None) -> None:
        """Regenerate the feature matrix from ``seed`` (default: the module's seed)."""
        if seed is not None:
            self.seed = seed
        w = orthogonal_random_features(self.nb_features, self.dim, self.seed)
        self.projection.copy_(w.to(self.projection.device))

    def prepare(self, q=None, k=None, v=None, *, key_padding_mask=None) -> None:
        """Harness hook: Performer learns nothing from data; it redraws W from its seed."""
        self.redraw()

    def _scaled_projection(self, dtype: torch.dtype, device, *, base2: bool = True):
        """(W' = W / d^(1/4), c = -1 / (2 sqrt(d))), both times log2(e) if ``base2``:
        the logits are x W'^T + c |x|^2."""
        unit = math.log2(math.e) if base2 else 1.0
        w = self.projection.to(device=device, dtype=dtype) * (unit * self.dim**-0.25)
        return w, -0.5 * unit * self.dim**-0.5

    def logits(self, x: Tensor, *, base2: bool = False) -> Tensor:
        """log(phi(x) * sqrt(m)) = W x' - |x'|^2 / 2, shape (..., m), x' = x / d^(1/4):
        one GEMM with the norm term fused in as its bias; ``base2``: in log2 units (times
        log2(e)), for exp2, the fast exponential on the CPU."""
        return _logits(x, *self._scaled_projection(x.dtype, x.device, base2=base2))

    def forward(self, q, k, v, *, causal: bool = False, key_padding_mask=None) -> Tensor:
        check_attention_inputs(
            q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="performer"
        )
        if q.shape[-1] != self.dim:
            raise ValueError(f"performer: expected head dim {self.dim}, got q dim {q.shape[-1]}")
        ct = compute_dtype(q.dtype)
        if not causal:
            features = _FavorFeatures(*self._scaled_projection(ct, q.device))
            out = closed_form_attention(q.to(ct), k.to(ct), v.to(ct), key_padding_mask, features)
            return out.to(q.dtype)
        # all levels in log2 units; the features' backward is written out (one (L, m)
        # temporary, where autograd over the in-place ops held four)
        w, half = self._scaled_projection(ct, q.device)
        chunk = max(1, min(self.chunk_size, q.shape[2]))
        if runs_segmented(-(-q.shape[2] // chunk), q, k, v):  # no backward ahead
            out = _segmented_causal(q.to(ct), k.to(ct), v.to(ct), w, half, key_padding_mask, chunk)
            return out.to(q.dtype)
        padded = None if key_padding_mask is None else key_padding_mask[:, None, :]
        phi_q, _ = _CausalFeatures.apply(q.to(ct), w, half, None, False)
        phi_k, level = _CausalFeatures.apply(k.to(ct), w, half, padded, True)
        out = kernel_attention(
            phi_q, phi_k, v.to(ct), causal=True, chunk_size=self.chunk_size, k_factor=level
        )
        return out.to(q.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, nb_features={self.nb_features}, seed={self.seed}"


def _logits(x: Tensor, w: Tensor, half: float) -> Tensor:
    """x (..., d) -> x w^T + half |x|^2, (..., m): one GEMM, the norm term its bias."""
    rows = x.reshape(-1, x.shape[-1])
    bias = (rows * rows).sum(dim=-1, keepdim=True).mul_(half)
    return torch.addmm(bias, rows, w.T).view(*x.shape[:-1], w.shape[0])


def _query_features_(lq: Tensor) -> tuple[Tensor, Tensor]:
    """(2^(lq - max_r lq), max_r lq), in place on lq (..., m); the per-query maximum
    (...,), detached, cancels in the ratio."""
    top = lq.amax(dim=-1).detach()
    return lq.sub_(top[..., None]).exp2_(), top


def _key_features_(lk: Tensor, padded: Tensor | None, *, running: bool):
    """(2^(lk - level), level), in place on the key logits lk (..., Lk, m); ``padded``
    (broadcastable to (..., Lk)) marks padded keys, whose features are 0 and which do not
    set the level. The level is the running maximum over keys j' <= j and features
    (``running``, causal: no future key moves it) or the maximum over all unpadded keys,
    shape (..., 1). Detached: it cancels in the ratio."""
    key_max = lk.amax(dim=-1).detach()  # (..., Lk)
    if padded is not None:
        key_max = key_max.masked_fill(padded, _FLOOR)
    if running:
        level = torch.cummax(key_max, dim=-1).values
    else:
        level = key_max.amax(dim=-1, keepdim=True)
    exponent = lk.sub_(level[..., None])
    if padded is not None:
        # -inf before exp2 (not 0 after it): a padded key's exponent may overflow, and
        # 0 * inf would poison the backward pass
        exponent = exponent.masked_fill_(padded[..., None], -torch.inf)
    return exponent.exp2_(), level


class _FavorFeatures(FeatureMap):
    """The positive random features in log2 units for ``closed_form_attention``::

        phi_q = 2^(lq - max_r lq),   phi_k = 2^(lk - max_{j unpadded, r} lk)  (0 if padded),
        l = x W'^T + c |x|^2,   dl = dphi * phi * ln 2,   dx = dl W' + 2 c x (dl 1)

    (the maxima are per-row constants; they cancel in the ratio)."""

    def __init__(self, w: Tensor, half: float):
        self.w, self.half = w, half

    def keys(self, k, padded):
        return _key_features_(_logits(k, self.w, self.half), padded, running=False)[0]

    def queries(self, q):
        return _query_features_(_logits(q, self.w, self.half))[0]

    def input_grad(self, dphi, phi, x):
        return _logits_grad(dphi.mul_(phi), x, self.w, self.half)  # dl / ln 2, in place


def _logits_grad(dl: Tensor, x: Tensor, w: Tensor, half: float) -> Tensor:
    """dLoss/dx from dl = dLoss/dphi * phi (= dLoss/dl / ln 2) of phi = 2^(l - const),
    l = x w^T + half |x|^2: dx = ln 2 (dl w + 2 half x (dl 1)). dl (..., m), x (..., d)."""
    dl = dl.reshape(-1, dl.shape[-1])
    rows = x.reshape(-1, x.shape[-1])
    ln2 = math.log(2.0)
    scaled = rows * (2.0 * half * ln2 * dl.sum(dim=-1, keepdim=True))
    return torch.addmm(scaled, dl, w * ln2).view(x.shape)


class _CausalFeatures(torch.autograd.Function):
    """The causal form's features and stabiliser, with a written-out backward::

        queries: phi = 2^(l - max_r l),   keys: phi = 2^(l - level_j), level_j the running
        maximum of l over keys j' <= j and features (padded keys: phi = 0, no level),
        l = x w^T + half |x|^2 (log2 units),   dx = ln 2 (dl w + 2 half x (dl 1)),
        dl = dphi * phi

    x (N, H, L, d) -> (phi (N, H, L, m), stabiliser (N, H, L), detached). Autograd over
    the same in-place ops (a GEMM's output viewed, shifted, exponentiated) keeps the
    view's full-size gradient, a zero-filled copy of it and two products alive in the
    backward (four (L, m) tensors); this backward forms one, dl."""

    @staticmethod
    def forward(ctx, x, w, half, padded, keys):
        logits = _logits(x, w, half)
        if keys:
            phi, level = _key_features_(logits, padded, running=True)
        else:
            phi, level = _query_features_(logits)
        ctx.save_for_backward(x, phi, w)
        ctx.half = half
        ctx.mark_non_differentiable(level)
        return phi, level

    @staticmethod
    @once_differentiable
    def backward(ctx, dphi, _dlevel):
        x, phi, w = ctx.saved_tensors
        return _logits_grad(dphi * phi, x, w, ctx.half), None, None, None, None


def _segmented_causal(q, k, v, w, half, key_padding_mask, chunk) -> Tensor:
    """Causal FAVOR+ without a backward ahead, one row and one segment of
    ``SEGMENT_CHUNKS`` chunks at a time (``impls.attention.linear.scan_segments``): the
    query and key features, the running key level and the stabiliser's factors of the
    chunked scan (``kernel_attention`` with ``k_factor``) are formed per segment, the
    running level and the last chunk's level carried to the next segment. The same
    equations as the whole-sequence form; no (L, m) feature tensor and no
    (L/C, C, C) weight tensor exists. q, k (N, H, L, d), v (N, H, L, dv),
    ``key_padding_mask`` (N, L) or None -> (N, H, L, dv). Positions past L (the last
    chunk's tail) get zero features and keep the last level, as in ``kernel_attention``."""
    batch, heads, length, d = q.shape
    dv, m = v.shape[-1], w.shape[0]
    rows, n_chunks = batch * heads, -(-length // chunk)
    qr, kr, vr = q.reshape(rows, length, d), k.reshape(rows, length, d), v.reshape(rows, length, dv)
    padded_rows = None
    if key_padding_mask is not None:
        padded_rows = key_padding_mask[:, None, :].expand(batch, heads, length).reshape(rows, -1)
    tril = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    last_level = None  # the running key level at the end of the previous segment

    def inputs(r: int, t0: int, t1: int):
        nonlocal last_level
        g, p0, p1 = t1 - t0, t0 * chunk, min(t1 * chunk, length)
        tail = g * chunk - (p1 - p0)
        phi_q = _query_features_(_logits(qr[r, p0:p1], w, half))[0]
        lk = _logits(kr[r, p0:p1], w, half)
        key_max = lk.amax(dim=-1)
        padded = None if padded_rows is None else padded_rows[r, p0:p1]
        if padded is not None:
            key_max.masked_fill_(padded, _FLOOR)
        level = torch.cummax(key_max, dim=0).values
        if t0 > 0:
            level = torch.maximum(level, last_level)
        exponent = lk.sub_(level[:, None])
        if padded is not None:  # -inf before exp2 (a padded key's exponent may overflow)
            exponent.masked_fill_(padded[:, None], -torch.inf)
        phi_k, values = exponent.exp2_(), vr[r, p0:p1]
        if tail:
            phi_q, phi_k = F.pad(phi_q, (0, 0, 0, tail)), F.pad(phi_k, (0, 0, 0, tail))
            values = F.pad(values, (0, 0, 0, tail))
            level = torch.cat([level, level[-1:].expand(tail)])
        level = level.view(g, chunk)
        diff = level[:, None, :] - level[:, :, None]  # [c, i, j] = level_j - level_i
        weights = torch.exp2(diff.masked_fill_(~tril, -torch.inf))
        lam = level[:, -1]  # the level each chunk's state is kept at
        start = lam.new_full((1,), -torch.inf) if t0 == 0 else last_level.reshape(1)
        before = torch.cat([start, lam[:-1]])
        last_level = lam[-1]
        return (
            phi_q.view(g, chunk, m),
            phi_k.view(g, chunk, m),
            values.view(g, chunk, dv),
            weights,
            torch.exp2(level - lam[:, None]),
            torch.exp2(before - lam),
            torch.exp2(before[:, None] - level),
        )

    out = scan_segments(inputs, rows, n_chunks, chunk, m, dv, v)
    return out.reshape(batch, heads, n_chunks * chunk, dv)[:, :, :length]


def performer_log_kernel(module: PerformerAttention, q: Tensor, k: Tensor) -> Tensor:
    """log(phi(q_i)^T phi(k_j)) for all pairs, (N, H, Lq, Lk); for oracle identity checks."""
    lq, lk = module.logits(q), module.logits(k)
    return torch.logsumexp(lq[..., :, None, :] + lk[..., None, :, :], dim=-1) - math.log(
        module.nb_features
    )


def analytic_cost(query: CostQuery) -> Cost:
    """FAVOR+ with m features: the feature maps of q and k are two (L x d) x (d x m)
    GEMMs, 4 L d m, plus their norms and exponentials (about 6 L m); the kernel attention
    on m features is ``impls.attention.linear.chunked_kernel_cost`` (4 L m dv for the
    chunk states and read-out, 2 L C (m + dv) within chunks when causal, the normaliser
    and the prefix). Working memory: the (L, m) features and logits and their gradients,
    the kernel attention's buffers (chunk states of m x dv). Backward: 2x the FLOPs and
    3x the working memory."""
    n, d = query.length, query.dim
    m = query.hp.get("nb_features", 256)
    flops, working = chunked_kernel_cost(query, m, query.hp.get("chunk_size", 64))
    per_row = flops + 4.0 * n * d * m + 6.0 * n * m
    grad = 3 if query.backward else 1
    working_bytes = query.itemsize * query.rows * grad * (working + 4 * n * m + 2 * n * d)
    return Cost(
        query.rows * query.passes * per_row,
        compulsory_traffic(query),
        int(working_bytes + SLACK_BYTES),
    )
