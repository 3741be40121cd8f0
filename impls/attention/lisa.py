"""LISA (Wu et al., WWW 2021): the operator, the quantiser and the layers in one import."""

from impls.attention.lisa_layers import LISABase, LISAMini, LISASoft
from impls.attention.lisa_operator import (
    effective_chunk_size,
    lisa_attention,
    lisa_attention_cached,
)
from impls.attention.lisa_quantizer import QuantizerOutput, ResidualQuantizer

__all__ = [
    "LISABase",
    "LISAMini",
    "LISASoft",
    "QuantizerOutput",
    "ResidualQuantizer",
    "effective_chunk_size",
    "lisa_attention",
    "lisa_attention_cached",
]
