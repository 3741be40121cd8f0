"""The efficient-attention leaderboard (``python -m harness leaderboard``).

``pipeline``: per method, conformance -> error against exact attention -> time/memory on
an L grid as ratios against SDPA -> exponents and crossover -> downstream HR/NDCG.
``store``: the JSON document, ranking, Pareto front, merging across machines.
``report``: Markdown table and static HTML page.
"""

from harness.leaderboard.pipeline import LeaderboardConfig, run_conformance, run_leaderboard
from harness.leaderboard.report import to_html, to_markdown, write_outputs
from harness.leaderboard.store import SCHEMA_VERSION, merge_documents, rank_rows

__all__ = [
    "SCHEMA_VERSION",
    "LeaderboardConfig",
    "merge_documents",
    "rank_rows",
    "run_conformance",
    "run_leaderboard",
    "to_html",
    "to_markdown",
    "write_outputs",
]
