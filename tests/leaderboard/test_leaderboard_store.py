"""Ranking, the Pareto front and merging leaderboard documents from several machines."""

from __future__ import annotations

import pytest
from leaderboard_rows import document, row

from harness.leaderboard.store import (
    QUALITY_DIGITS,
    SCHEMA_VERSION,
    headline,
    headline_length,
    merge_documents,
    quality_interval,
    rank_rows,
    within_noise,
)


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
        ranked = rank_rows(rows)
        got = [(r["method"], r["machine"], r["pareto"]) for r in ranked]
        assert got == _reference_rank(rows), trial
        _check_shared_ranks(ranked)


def _check_shared_ranks(ranked):
    """One seed each: a row shares the rank of the first row of its run of rows that
    passed alike and show the same NDCG@10; every other row's rank is its position."""

    def key(r):
        q = (r.get("downstream") or {}).get("NDCG@10")
        passed = r["conformance"]["status"] in ("passed", "n/a")
        return None if q is None else (passed, f"{q:.{QUALITY_DIGITS}f}")

    head = None
    for r in ranked:
        if head is None or key(r) is None or key(r) != key(head):
            head = r
        assert r["shared_rank"] == head["rank"], (r["method"], r["machine"])
        same = [x for x in ranked if x["shared_rank"] == r["shared_rank"]]
        assert r["tied"] == (len(same) > 1)


# --------------------------------------------------------------------------------------
# Ties: methods whose quality is within noise share a rank


def _seeded(method, ndcg, sd=None, runs=1, status="passed"):
    r = row(method, ndcg=ndcg, speedup=1.0, status=status)
    r["downstream"].update({"NDCG@10 sd": sd, "runs": runs, "seeds": list(range(runs))})
    return r


def _shared(rows):
    return [(r["method"], r["shared_rank"], r["tied"]) for r in rank_rows(rows)]


def test_identical_scores_share_a_rank_and_rank_stays_the_position():
    """The newcomer's board: four methods at exactly 0.4781 are one rank, not #1..#4."""
    ranked = rank_rows(
        [row(m, ndcg=0.4781, speedup=s) for m, s in (("lsh", 0.5), ("sdpa", 1.0))]
        + [row(m, ndcg=0.4781, speedup=s) for m, s in (("oracle", 0.1), ("local_window", 2.0))]
        + [row("linear", ndcg=0.35, speedup=4.0)]
    )
    assert [r["shared_rank"] for r in ranked] == [1, 1, 1, 1, 5]
    assert [r["tied"] for r in ranked] == [True] * 4 + [False]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5]  # unique order, as before
    assert ranked[0]["method"] == "local_window"  # within a tie: HR@10, then speed-up


def test_one_seed_ties_at_the_displayed_precision():
    assert _shared([_seeded("a", 0.47814), _seeded("b", 0.47806)]) == [
        ("a", 1, True),
        ("b", 1, True),
    ]  # both show as 0.4781
    assert _shared([_seeded("a", 0.4782), _seeded("b", 0.4781)]) == [
        ("a", 1, False),
        ("b", 2, False),
    ]


def test_seeds_tie_when_their_95_percent_intervals_overlap():
    # 3 seeds: half-width t(0.975, 2) * sd / sqrt(3) = 4.302653 * sd / 1.732051
    interval = quality_interval({"NDCG@10": 0.48, "NDCG@10 sd": 0.01, "runs": 3})
    assert interval == (
        pytest.approx(0.48 - 4.302653 * 0.01 / 3**0.5, rel=1e-6),
        pytest.approx(0.48 + 4.302653 * 0.01 / 3**0.5, rel=1e-6),
    )
    wide = [_seeded("a", 0.48, 0.01, 3), _seeded("b", 0.47, 0.01, 3)]  # +-0.0248: overlap
    assert [t for _, _, t in _shared(wide)] == [True, True]
    tight = [_seeded("a", 0.48, 0.001, 3), _seeded("b", 0.47, 0.001, 3)]  # +-0.0025: apart
    assert _shared(tight) == [("a", 1, False), ("b", 2, False)]
    # a single seed has no interval: seeds from len(seeds) when runs is missing
    assert quality_interval({"NDCG@10": 0.48, "NDCG@10 sd": None, "runs": 1}) is None
    assert quality_interval({"NDCG@10": 0.48, "NDCG@10 sd": 0.01, "seeds": [0, 1]}) is not None
    # one row with an interval, one without: the displayed precision decides
    assert within_noise(0.48, 0.47, (0.45, 0.51), None) is False
    assert within_noise(0.48001, 0.47999, (0.47, 0.49), None) is True


def test_a_tie_is_with_the_best_row_of_its_group_not_a_chain():
    """b overlaps a, c overlaps b but not a: c does not join a's rank through b."""
    rows = [
        _seeded("a", 0.500, 0.001, 3),  # [0.4975, 0.5025]
        _seeded("b", 0.490, 0.010, 3),  # [0.4652, 0.5148]
        _seeded("c", 0.470, 0.002, 3),  # [0.4650, 0.4750]
    ]
    assert _shared(rows) == [("a", 1, True), ("b", 1, True), ("c", 3, False)]


def test_no_tie_across_conformance_or_without_a_score():
    rows = [
        row("ok", ndcg=0.3, speedup=1.0),
        row("bad", ndcg=0.3, speedup=1.0, status="failed"),
        row("none1", speedup=2.0),
        row("none2", speedup=1.0),
    ]
    assert _shared(rows) == [
        ("ok", 1, False),
        ("none1", 2, False),
        ("none2", 3, False),
        ("bad", 4, False),
    ]


def test_speedup_is_taken_at_the_longest_length_every_row_reached():
    fast = row("fast", ndcg=0.3, speedup=4.0)
    cut = row("cut", ndcg=0.2, speedup=2.0)
    for r in (fast, cut):
        r["speed"]["lengths"].append(256)
        r["speed"]["time_ratio"].append(None if r is cut else 0.1)
        r["speed"]["memory_ratio"].append(0.5)
    oracle = row("oracle", ndcg=0.3, speedup=0.5)
    oracle["speed"] = {**oracle["speed"], "lengths": [64], "time_ratio": [3.0]}
    oracle["speed"]["reference_only"] = True  # the oracle's short grid does not count
    assert headline_length([fast, cut, oracle]) == 128
    ranked = {r["method"]: r for r in rank_rows([fast, cut, oracle])}
    assert ranked["fast"]["speedup"] == pytest.approx(4.0)  # at L=128, not 10x at 256
    assert ranked["oracle"]["speedup"] is None  # never reached L=128
    assert headline(ranked["oracle"], 128)["time_ratio"] is None
    # a headline the row carries wins
    fast["speed"]["headline"] = {"length": 256, "time_ratio": 0.1, "memory_ratio": 0.5}
    assert {r["method"]: r for r in rank_rows([fast, cut])}["fast"]["speedup"] == 10.0
    # rows that share no length: each at its own longest L
    cut["speed"]["lengths"] = [32, 48, 96]
    fast["speed"].pop("headline")
    assert headline_length([fast, cut]) is None
    assert headline(fast)["length"] == 256 and headline(fast)["source"] == "own longest L"
