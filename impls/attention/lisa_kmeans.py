"""LISA at operator level in the q/k/v contract: keys and values quantised by k-means,
then the codeword-histogram operator (Wu et al., WWW 2021; ``impls.attention.lisa_operator``).

State: one codebook per head (each head plays the role of one LISA codebook), W joint
codewords c[h, w] = [Kc[h, w] ; Vc[h, w]] (d + dv numbers each), fitted by seeded k-means
(k-means++ start, Lloyd steps) on the joint vectors [k_j ; v_j] of that head in a
calibration batch (``fit`` / ``prepare``). Forward, per head h::

    code_j = argmin_w |[k_j ; v_j] - c[h, w]|^2       (depends on token j alone)
    out_l  = lisa_attention(q_l, codes, Kc[h], Vc[h]) (B = 1, one call per head)
           = sum_{j visible from l} gamma^|l-j| exp(s_lj) Vc[code_j]
             / sum_{j visible from l} gamma^|l-j| exp(s_lj),   s_lj = <q_l, Kc[code_j]>/sqrt(d)

With gamma = 1 this is exact attention over the quantised keys/values
(``reference.exact_attention(q, Kc[codes], Vc[codes])``), and the error against attention
over the raw k/v falls as W grows (the quantisation error does).

Why the codebook is fitted beforehand and not on the input being attended: k-means on the
input itself would make position l's output depend on keys after l (they move the
centroids), breaking causality. Quantising each token against a fixed codebook keeps
causality exact. Codes are hard (argmin), so no gradient reaches k or v; q gets
gradients. Heads have their own codebooks, so heads are independent but not
interchangeable (no head equivariance).
Time O(L W (d + dv)), memory O(L (d + dv) + chunk W).
Shapes: q/k (batch, heads, L, d), v (batch, heads, L, dv) -> (batch, heads, L, dv).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from impls.attention._validation import check_attention_inputs, compute_dtype
from impls.attention.lisa_operator import lisa_attention
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = ["LisaKMeansAttention", "kmeans"]


def _sq_distances(x: Tensor, centres: Tensor) -> Tensor:
    """Squared Euclidean distances (n, W) between rows of x (n, D) and centres (W, D)."""
    return (x * x).sum(-1, keepdim=True) - 2.0 * x @ centres.T + (centres * centres).sum(-1)[None]


def kmeans(points: Tensor, num_centres: int, *, iters: int, seed: int) -> Tensor:
    """Seeded k-means on points (n, D); returns centres (num_centres, D).

    Initialisation is greedy k-means++ (Arthur & Vassilvitskii 2007): the first centre is a
    uniformly drawn point; for each next one, 2 + ln(W) candidates are drawn with
    probability proportional to their squared distance to the nearest chosen centre
    (uniformly when all distances are 0) and the candidate that most reduces the total
    squared distance is kept. Then ``iters`` Lloyd steps; a centre that loses all its points
    keeps its position."""
    n = points.shape[0]
    if n == 0:
        raise ValueError("lisa_kmeans: the calibration batch has no unpadded key to fit")
    gen = torch.Generator().manual_seed(seed)
    x = points.cpu()
    trials = 2 + int(math.log(num_centres))
    chosen = [int(torch.randint(0, n, (1,), generator=gen))]
    nearest = _sq_distances(x, x[chosen]).min(dim=1).values.clamp_min(0.0)
    for _ in range(1, num_centres):
        total = float(nearest.sum())
        probs = nearest / total if total > 0 else torch.full_like(nearest, 1.0 / n)
        picks = torch.multinomial(probs, trials, replacement=True, generator=gen)
        candidate = torch.minimum(nearest[:, None], _sq_distances(x, x[picks]).clamp_min(0.0))
        best = int(candidate.sum(dim=0).argmin())
        chosen.append(int(picks[best]))
        nearest = candidate[:, best]
    centres = points[torch.tensor(chosen, device=points.device)].clone()
    for _ in range(iters):
        assign = _sq_distances(points, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=num_centres).to(points.dtype)
        filled = counts > 0
        new = sums / counts.clamp_min(1.0)[:, None]
        centres = torch.where(filled[:, None], new, centres)
    return centres


class LisaKMeansAttention(nn.Module):
    """``LisaKMeansAttention(dim, heads, codewords=64)``; call ``prepare(q, k, v)`` (or
    ``fit(k, v)``) on a calibration batch before the first forward."""

    def __init__(
        self,
        dim: int,
        heads: int | None = None,
        *,
        codewords: int = 64,
        iters: int = 20,
        seed: int = 0,
        gamma: float = 1.0,
        chunk_size: int = 256,
    ):
        super().__init__()
        for name, val in (("codewords", codewords), ("iters", iters), ("chunk_size", chunk_size)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"lisa_kmeans: {name} must be an int >= 1, got {val!r}")
        self.dim, self.codewords, self.iters, self.seed = dim, codewords, iters, seed
        self.gamma, self.chunk_size = gamma, chunk_size
        self.register_buffer("key_codewords", torch.empty(0, dim, dtype=torch.float64))
        self.register_buffer("value_codewords", torch.empty(0, 0, dtype=torch.float64))

    @property
    def fitted(self) -> bool:
        return self.key_codewords.shape[0] > 0

    @torch.no_grad()
    def fit(self, k: Tensor, v: Tensor, *, key_padding_mask: Tensor | None = None) -> None:
        """Per-head k-means (W = ``codewords``) on the joint [k ; v] rows of a calibration
        batch; k (batch, heads, L, d), v (batch, heads, L, dv); padded keys are left out."""
        check_attention_inputs(
            k, k, v, causal=False, key_padding_mask=key_padding_mask, method="lisa_kmeans.fit"
        )
        if k.shape[-1] != self.dim:
            raise ValueError(f"lisa_kmeans: expected head dim {self.dim}, got k dim {k.shape[-1]}")
        joint = torch.cat([k, v], dim=-1).to(torch.float64)  # (batch, heads, L, d + dv)
        keep = None if key_padding_mask is None else ~key_padding_mask  # (batch, L)
        books = []
        for h in range(joint.shape[1]):
            rows = joint[:, h] if keep is None else joint[:, h][keep]
            rows = rows.reshape(-1, joint.shape[-1])
            books.append(kmeans(rows, self.codewords, iters=self.iters, seed=self.seed))
        centres = torch.stack(books)  # (heads, W, d + dv)
        self.key_codewords = centres[..., : self.dim].contiguous()
        self.value_codewords = centres[..., self.dim :].contiguous()

    def prepare(self, q: Tensor, k: Tensor, v: Tensor, *, key_padding_mask=None) -> None:
        """Harness hook: fit the codebooks on a calibration batch (q is not used)."""
        self.fit(k, v, key_padding_mask=key_padding_mask)

    def quantise(self, k: Tensor, v: Tensor) -> Tensor:
        """Codes (batch, heads, L) int64: nearest joint codeword of each token [k_j ; v_j]
        in its head's codebook."""
        centres = torch.cat([self.key_codewords, self.value_codewords], dim=-1)
        centres = centres.to(device=k.device, dtype=k.dtype)  # (heads, W, d + dv)
        joint = torch.cat([k, v], dim=-1)  # (batch, heads, L, d + dv)
        dist = (
            (joint * joint).sum(-1, keepdim=True)
            - 2.0 * torch.einsum("nhle,hwe->nhlw", joint, centres)
            + (centres * centres).sum(-1)[None, :, None, :]
        )
        return dist.argmin(dim=-1)

    def forward(self, q, k, v, *, causal: bool = False, key_padding_mask=None) -> Tensor:
        check_attention_inputs(
            q,
            k,
            v,
            causal=causal,
            key_padding_mask=key_padding_mask,
            same_length=True,
            method="lisa_kmeans",
        )
        if not self.fitted:
            raise RuntimeError(
                "lisa_kmeans: the codebook is not fitted; call prepare(q, k, v) or fit(k, v) "
                "on a calibration batch first"
            )
        heads, _, dv = self.value_codewords.shape
        if q.shape[1] != heads or q.shape[-1] != self.dim or v.shape[-1] != dv:
            raise ValueError(
                f"lisa_kmeans: fitted for heads={heads}, d={self.dim}, dv={dv}; "
                f"got heads={q.shape[1]}, d={q.shape[-1]}, dv={v.shape[-1]}"
            )
        ct = compute_dtype(q.dtype)
        codes = self.quantise(k.to(ct), v.to(ct))
        kc = self.key_codewords.to(device=q.device, dtype=ct)
        vc = self.value_codewords.to(device=q.device, dtype=ct)
        outs = [
            lisa_attention(
                q[:, h : h + 1].to(ct),
                codes[:, h : h + 1],
                kc[h : h + 1],
                vc[h : h + 1],
                gamma=self.gamma,
                causal=causal,
                key_padding_mask=key_padding_mask,
                chunk_size=self.chunk_size,
            )
            for h in range(heads)
        ]
        return torch.stack(outs, dim=1).to(q.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codewords={self.codewords}, seed={self.seed}, gamma={self.gamma}"


def analytic_cost(query: CostQuery) -> Cost:
    """Assigning L keys to W codewords costs 2 L W d, the query-codeword scores 2 L W d,
    merging the codeword values 2 L W d; working memory (L, d) and (L, W) buffers plus one
    chunk's (C, W) scan state."""
    n, d = query.length, query.dim
    words = query.hp.get("codewords", 64)
    chunk = min(query.hp.get("chunk_size", 256), n)
    grad = 3 if query.backward else 1
    working = query.itemsize * query.rows * grad * ((8 * d + 4 * words) * n + 12 * chunk * words)
    flops = query.rows * query.passes * 6.0 * n * words * d
    return Cost(flops, compulsory_traffic(query), int(working + SLACK_BYTES))
