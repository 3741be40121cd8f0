"""Ranking, the Pareto front and merging leaderboard documents from several machines."""

from __future__ import annotations

import pytest
from leaderboard_rows import document, row

from harness.leaderboard.store import SCHEMA_VERSION, merge_documents, rank_rows


def test_ranking_puts_conformant_methods_first_then_quality():
    ranked = rank_rows(
        [
            row("broken", ndcg=0.9, speedup=10.0, status="failed"),
            row("slow_good", ndcg=0.5, speedup=0.5),
            row("fast_bad", ndcg=0.2, speedup=4.0),
            row("middle", ndcg=0.4, speedup=1.0),
            row("no_quality", speedup=8.0),
        ]
    )
    assert [r["method"] for r in ranked] == [
        "slow_good",
        "middle",
        "fast_bad",
        "no_quality",
        "broken",
    ]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5]


def test_pareto_front_by_hand():
    ranked = {
        r["method"]: r
        for r in rank_rows(
            [
                row("a", ndcg=0.5, speedup=0.5),  # best quality: on the front
                row("b", ndcg=0.2, speedup=4.0),  # fastest: on the front
                row("c", ndcg=0.4, speedup=1.0),  # trade-off: on the front
                row("d", ndcg=0.3, speedup=0.9),  # dominated by c
                row("e", ndcg=0.2, speedup=3.0),  # dominated by b
                row("f", speedup=9.0),  # no quality: not plotted, not on the front
            ]
        )
    }
    assert {m for m, r in ranked.items() if r["pareto"]} == {"a", "b", "c"}
    assert ranked["b"]["speedup"] == pytest.approx(4.0)


def test_merge_keeps_rows_from_each_machine_and_latest_per_key():
    one = document([row("sdpa", "m1", ndcg=0.3, speedup=1.0), row("lsh", "m1", ndcg=0.1)], "m1")
    two = document([row("sdpa", "m2", ndcg=0.31, speedup=1.0)], "m2")
    newer = document([row("lsh", "m1", ndcg=0.2, at="2026-02-01T00:00:00")], "m1")
    merged = merge_documents(one, two, newer)
    keys = {(r["method"], r["machine"]): r for r in merged["rows"]}
    assert set(keys) == {("sdpa", "m1"), ("sdpa", "m2"), ("lsh", "m1")}
    assert keys[("lsh", "m1")]["downstream"]["NDCG@10"] == 0.2  # the newer run wins
    assert set(merged["machines"]) == {"m1", "m2"}
    assert merged["schema_version"] == SCHEMA_VERSION
    assert sorted(r["rank"] for r in merged["rows"]) == [1, 2, 3]
    # order of documents does not matter for the winner
    again = merge_documents(newer, two, one)
    assert {(r["method"], r["machine"]): r["downstream"]["NDCG@10"] for r in again["rows"]} == {
        k: r["downstream"]["NDCG@10"] for k, r in keys.items()
    }


def test_merge_refuses_other_schemas_and_other_data():
    good = document([row("sdpa", ndcg=0.3)])
    with pytest.raises(ValueError, match="schema_version"):
        merge_documents(good, {**good, "schema_version": 999})
    with pytest.raises(ValueError, match="checksum"):
        merge_documents(good, document([row("lsh", ndcg=0.3)], checksum="other"))


def test_merge_command_writes_the_merged_board(tmp_path, capsys):
    import json

    from harness.cli import main

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(document([row("sdpa", "m1", ndcg=0.3, speedup=1.0)], "m1")))
    b.write_text(json.dumps(document([row("sdpa", "m2", ndcg=0.2, speedup=1.0)], "m2")))
    assert main(["leaderboard", "--merge", str(a), str(b), "--output-dir", str(tmp_path)]) == 0
    merged = json.loads((tmp_path / "leaderboard.json").read_text())
    assert {r["machine"] for r in merged["rows"]} == {"m1", "m2"}
    assert (tmp_path / "leaderboard.html").is_file() and (tmp_path / "leaderboard.md").is_file()
    b.write_text(json.dumps({**json.loads(b.read_text()), "schema_version": 0}))
    assert main(["leaderboard", "--merge", str(a), str(b), "--output-dir", str(tmp_path)]) == 2
    assert "--merge" in capsys.readouterr().err


def test_leaderboard_command_names_bad_arguments(capsys):
    from harness.cli import main

    assert main(["leaderboard", "--quick", "--methods", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["leaderboard", "--quick", "--lengths", "1", "8"]) == 2
    assert "--lengths" in capsys.readouterr().err
    assert main(["leaderboard", "--quick", "--lengths", "64", "32"]) == 2
    assert "increasing" in capsys.readouterr().err


def _reference_rank(rows):
    """The ranking rule written out directly (quadratic Pareto), to compare against."""
    rows = [dict(r) for r in rows]
    for r in rows:
        ratios = [x for x in (r.get("speed") or {}).get("time_ratio") or [] if x is not None]
        r["speedup"] = 1.0 / ratios[-1] if ratios and ratios[-1] > 0 else None

    def quality(r):
        return (r.get("downstream") or {}).get("NDCG@10")

    rows.sort(
        key=lambda r: (
            0 if r["conformance"]["status"] in ("passed", "n/a") else 1,
            -(quality(r) if quality(r) is not None else -1.0),
            -((r.get("downstream") or {}).get("HR@10") or -1.0),
            -(r["speedup"] or 0.0),
            r["method"],
            r["machine"],
        )
    )
    pts = [(i, quality(r), r["speedup"]) for i, r in enumerate(rows)]
    pts = [(i, q, s) for i, q, s in pts if q is not None and s is not None]
    front = {
        i
        for i, q, s in pts
        if not any(q2 >= q and s2 >= s and (q2 > q or s2 > s) for j, q2, s2 in pts if j != i)
    }
    return [(r["method"], r["machine"], i in front) for i, r in enumerate(rows)]


def test_ranking_and_pareto_match_the_rule_with_many_ties():
    import random

    rng = random.Random(7)
    for trial in range(60):
        rows = [
            row(
                f"m{rng.randrange(6)}",
                f"x{i}",
                ndcg=rng.choice([None, 0.0, 0.1, 0.2, 0.2, 0.3]),
                speedup=rng.choice([None, 0.5, 1.0, 1.0, 2.0, 4.0]),
                status=rng.choice(["passed", "n/a", "failed", "skipped"]),
            )
            for i in range(rng.randrange(1, 40))
        ]
        got = [(r["method"], r["machine"], r["pareto"]) for r in rank_rows(rows)]
        assert got == _reference_rank(rows), trial
