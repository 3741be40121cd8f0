"""Builders shared by the LISA tests: seeded inputs and the oracle form of each identity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

from reference.attention import exact_attention

F64 = torch.float64
GAMMAS = (1.0, math.exp(-0.1), 0.5, 0.02)


@dataclass
class LisaCase:
    query: Tensor  # (n, B, L, d)
    hard_codes: Tensor  # (n, B, L)
    soft_codes: Tensor  # (n, B, L, W)
    key_codewords: Tensor  # (B, W, d)
    value_codewords: Tensor  # (B, W, dv)
    query_codewords: Tensor  # (B, W, d)
    query_codes: Tensor  # (n, B, L)
    mask: Tensor  # (n, L) bool, True = padded

    @property
    def shape(self) -> tuple[int, int, int, int]:
        n, b, length, _ = self.query.shape
        return n, b, length, self.key_codewords.shape[1]


def make_case(
    seed: int,
    n: int,
    books: int,
    length: int,
    dim: int,
    words: int,
    dv: int = 3,
    dtype: torch.dtype = F64,
    pad_fraction: float = 0.3,
    score_scale: float = 1.0,
) -> LisaCase:
    g = torch.Generator().manual_seed(seed)
    soft = torch.rand(n, books, length, words, generator=g, dtype=dtype) ** 3 + 1e-3
    return LisaCase(
        query=torch.randn(n, books, length, dim, generator=g, dtype=dtype) * score_scale,
        hard_codes=torch.randint(0, words, (n, books, length), generator=g),
        soft_codes=soft / soft.sum(-1, keepdim=True),
        key_codewords=torch.randn(books, words, dim, generator=g, dtype=dtype),
        value_codewords=torch.randn(books, words, dv, generator=g, dtype=dtype),
        query_codewords=torch.randn(books, words, dim, generator=g, dtype=dtype) * score_scale,
        query_codes=torch.randint(0, words, (n, books, length), generator=g),
        mask=torch.rand(n, length, generator=g) < pad_fraction,
    )


@st.composite
def lisa_cases(draw, max_length: int = 24, max_books: int = 3, max_words: int = 5):
    return make_case(
        seed=draw(st.integers(0, 2**31 - 1)),
        n=draw(st.integers(1, 2)),
        books=draw(st.integers(1, max_books)),
        length=draw(st.integers(1, max_length)),
        dim=draw(st.integers(1, 5)),
        words=draw(st.integers(1, max_words)),
        dv=draw(st.integers(1, 4)),
    )


def gather_codewords(codewords: Tensor, codes: Tensor) -> Tensor:
    """codewords (B, W, e), codes (n, B, L) -> (n, B, L, e) with out[n,b,l] = cw[b, codes]."""
    books = torch.arange(codewords.shape[0])[None, :, None]
    return codewords[books, codes]


def decay_bias(length: int, gamma: float, causal: bool) -> Tensor:
    """log(gamma) * |l - j| as an (L, L) additive bias (0 when gamma = 1)."""
    pos = torch.arange(length, dtype=F64)
    return math.log(gamma) * (pos[:, None] - pos[None, :]).abs()


def oracle_hard(case: LisaCase, gamma: float, causal: bool, masked: bool) -> Tensor:
    """Identities 1-3 and 5: the sum over codebooks of exact attentions over the quantised
    keys/values, with the decay as an additive bias. Returns (n, L, dv)."""
    keys = gather_codewords(case.key_codewords, case.hard_codes)
    values = gather_codewords(case.value_codewords, case.hard_codes)
    per_book = exact_attention(
        case.query,
        keys,
        values,
        causal=causal,
        key_padding_mask=case.mask if masked else None,
        bias=decay_bias(case.query.shape[2], gamma, causal).to(case.query.dtype),
    )
    return per_book.sum(dim=1)


def oracle_soft(case: LisaCase, gamma: float, causal: bool, masked: bool) -> Tensor:
    """Identity 4: exact attention over L * W virtual tokens (key Kc[w], value Vc[w]) with
    additive bias log p_j(w) + log(gamma) |l - j|; causal and padding as -inf in the bias."""
    n, books, length, words = case.shape
    dim = case.key_codewords.shape[2]
    keys = case.key_codewords[None, :, None].expand(n, books, length, words, dim)
    values = case.value_codewords[None, :, None].expand(n, books, length, words, -1)
    bias = (
        decay_bias(length, gamma, causal)[None, None, :, :, None]
        + torch.log(case.soft_codes)[:, :, None, :, :]
    )  # (n, B, Lq, Lk, W)
    if causal:
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        bias = bias.masked_fill(future[None, None, :, :, None], -math.inf)
    if masked:
        bias = bias.masked_fill(case.mask[:, None, None, :, None], -math.inf)
    per_book = exact_attention(
        case.query,
        keys.reshape(n, books, length * words, dim),
        values.reshape(n, books, length * words, -1),
        bias=bias.reshape(n, books, length, length * words),
    )
    return per_book.sum(dim=1)
