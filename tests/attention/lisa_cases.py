"""Builders shared by the LISA tests: seeded inputs, and the identities of
``reference.lisa`` applied to them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

from reference.lisa import lisa_via_exact_attention

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


def oracle_hard(case: LisaCase, gamma: float, causal: bool, masked: bool) -> Tensor:
    """Identities 1-3 and 5: the sum over codebooks of exact attentions over the quantised
    keys/values, with the decay as an additive bias (``reference.lisa``). (n, L, dv)."""
    return lisa_via_exact_attention(
        case.query,
        case.hard_codes,
        case.key_codewords,
        case.value_codewords,
        gamma=gamma,
        causal=causal,
        key_padding_mask=case.mask if masked else None,
    )


def oracle_soft(case: LisaCase, gamma: float, causal: bool, masked: bool) -> Tensor:
    """Identity 4: exact attention over L * W virtual tokens (key Kc[w], value Vc[w]) with
    additive bias log p_j(w) + log(gamma) |l - j| (``reference.lisa``). (n, L, dv)."""
    return lisa_via_exact_attention(
        case.query,
        case.soft_codes,
        case.key_codewords,
        case.value_codewords,
        gamma=gamma,
        causal=causal,
        key_padding_mask=case.mask if masked else None,
    )
