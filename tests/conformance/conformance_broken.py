"""The suite's deliberately broken methods under their old reference
``conformance_broken:PEEK_AHEAD`` (with this directory on the path); they live in
``harness.conformance.broken``."""

from harness.conformance.broken import (
    IGNORES_PADDING,
    NAN_ON_EMPTY,
    PEEK_AHEAD,
    all_broken,
    ignores_padding_attention,
    nan_on_empty_rows_attention,
    peek_ahead_attention,
)

__all__ = [
    "IGNORES_PADDING",
    "NAN_ON_EMPTY",
    "PEEK_AHEAD",
    "all_broken",
    "ignores_padding_attention",
    "nan_on_empty_rows_attention",
    "peek_ahead_attention",
]
