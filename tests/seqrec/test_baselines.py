"""Model-free baselines on the protocol's candidates, the repeat check and the negatives
variant: hand-built tasks with hand-computed ranks, and seeded data (never a download)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.cli import main
from harness.seqrec.baselines import (
    REPEAT_THRESHOLD,
    baseline_metrics,
    baseline_ranks,
    repeat_share,
    repeat_warning,
    training_counts,
)
from harness.seqrec.sequences import EvalSplit, SeqRecData, leave_last_out
from harness.seqrec.synthetic_sequences import SyntheticConfig
from harness.seqrec.training import (
    NEGATIVES_FROM,
    SeqRecTask,
    load_task,
    negatives_from_all,
    random_ranker_metrics,
    with_negatives,
)

SMALL = SyntheticConfig(num_users=150, num_items=60, num_clusters=4, min_len=6, max_len=14)


def _arr(*items) -> np.ndarray:
    return np.asarray(items, dtype=np.int64)


def _hand_task() -> SeqRecTask:
    """10 items; training counts 7, 6, 5, 4, 3, 2, 1 for items 1..7 and 0 for 8, 9, 10."""
    counts = {1: 7, 2: 6, 3: 5, 4: 4, 5: 3, 6: 2, 7: 1}
    train = [
        np.repeat(_arr(*counts), list(counts.values())),
        _arr(),
        _arr(),
        _arr(),
    ]
    test = EvalSplit(
        inputs=[_arr(8, 9), _arr(), _arr(1), _arr(3, 4)],
        targets=_arr(8, 1, 9, 3),
        negatives=np.stack(
            [
                _arr(1, 2, 3, 4, 5, 6, 7),  # all more popular than 8: rank 7
                _arr(2, 3, 4, 5, 6, 7, 8),  # 1 is the most popular: rank 0
                _arr(8, 10, 1, 2, 3, 4, 5),  # 8 ties 9 on count, smaller id first: rank 6
                _arr(1, 2, 4, 5, 6, 7, 8),  # 1 and 2 above 3: rank 2
            ]
        ),
    )
    data = SeqRecData(name="hand", num_items=10, users=["a", "b", "c", "d"], sequences=[])
    return SeqRecTask(data=data, train=train, valid=test, test=test)


def test_training_counts_are_counted_from_the_training_sequences():
    counts = training_counts(_hand_task())
    assert counts.tolist() == [0, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]


def test_popularity_baseline_by_hand():
    task = _hand_task()
    assert baseline_ranks(task, "popularity").tolist() == [7, 0, 6, 2]
    m = baseline_metrics(task, seen_before=False)
    assert set(m) == {"popularity", "random"}
    pop = m["popularity"]
    assert pop["HR@5"] == pytest.approx(2 / 4)
    assert pop["HR@10"] == pytest.approx(4 / 4)
    assert pop["NDCG@5"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    expected = (1 + 1 / math.log2(4) + 1 / math.log2(8) + 1 / math.log2(9)) / 4
    assert pop["NDCG@10"] == pytest.approx(expected)


def test_seen_before_then_popularity_by_hand():
    task = _hand_task()
    # a: 8 seen, no negative seen -> 0; b: nothing seen -> popularity, 0;
    # c: 9 unseen while negative 1 is seen -> still 6; d: 3 seen, 4 seen but less popular -> 0
    assert baseline_ranks(task, "seen-before-popularity").tolist() == [0, 0, 6, 0]
    assert repeat_share(task) == pytest.approx(2 / 4)
    m = baseline_metrics(task)  # share 0.5 > threshold: reported
    assert m["seen-before-popularity"]["HR@5"] == pytest.approx(3 / 4)
    assert "seen-before-popularity" not in baseline_metrics(task, seen_before=False)
    with pytest.raises(ValueError, match="baseline must be one of"):
        baseline_ranks(task, "oracle")
    with pytest.raises(ValueError, match="split must be"):
        baseline_metrics(task, split="train")


def test_random_baseline_hits_at_the_chance_rate():
    n, m = 20_000, 100
    split = EvalSplit(
        inputs=[_arr()] * n,
        targets=np.ones(n, dtype=np.int64),
        negatives=np.tile(np.arange(2, m + 2, dtype=np.int64), (n, 1)),
    )
    data = SeqRecData(name="many", num_items=m + 1, users=[], sequences=[])
    task = SeqRecTask(data=data, train=[_arr(1)], valid=split, test=split)
    random = baseline_metrics(task, seed=3, seen_before=False)["random"]
    sd = math.sqrt(10 / 101 * (1 - 10 / 101) / n)
    assert abs(random["HR@10"] - 10 / 101) < 5 * sd
    assert random == random_ranker_metrics(split, seed=3)  # the same seeded scores
    assert baseline_metrics(task, seed=3)["random"] == random  # deterministic


def test_the_default_negatives_are_unchanged_and_never_in_the_history():
    task = load_task("synthetic", synthetic=SMALL, seed=0, num_negatives=30)
    _, valid, test = leave_last_out(task.data, num_negatives=30, seed=0)
    assert np.array_equal(task.valid.negatives, valid.negatives)  # leave_last_out's draw
    assert np.array_equal(task.test.negatives, test.negatives)
    again = load_task(
        "synthetic", synthetic=SMALL, seed=0, num_negatives=30, negatives_from="history-excluded"
    )
    assert np.array_equal(task.test.negatives, again.test.negatives)
    assert with_negatives(task, "history-excluded") is task
    for seq, v, t in zip(
        task.data.sequences, task.valid.negatives, task.test.negatives, strict=True
    ):
        assert not np.isin(v, seq).any() and not np.isin(t, seq).any()


def test_the_all_variant_draws_history_items_but_never_the_target():
    base = load_task("synthetic", synthetic=SMALL, seed=0, num_negatives=30)
    task = load_task("synthetic", synthetic=SMALL, seed=0, num_negatives=30, negatives_from="all")
    assert task.test.negatives.shape == base.test.negatives.shape
    assert np.array_equal(task.test.targets, base.test.targets)
    in_history = 0
    for split in (task.valid, task.test):
        for history, target, negs in zip(split.inputs, split.targets, split.negatives, strict=True):
            assert target not in negs and len(set(negs.tolist())) == negs.size
            assert negs.min() >= 1 and negs.max() <= task.data.num_items
            in_history += int(np.isin(negs, history).any())
    assert in_history > 0  # the history-excluded protocol never allows this
    again = load_task("synthetic", synthetic=SMALL, seed=0, num_negatives=30, negatives_from="all")
    assert np.array_equal(task.test.negatives, again.test.negatives)  # seeded
    with pytest.raises(ValueError, match="negatives_from must be one of"):
        load_task("synthetic", synthetic=SMALL, negatives_from="unseen")


def test_negatives_from_all_is_uniform_over_the_other_items():
    rng = np.random.default_rng(0)
    draws = negatives_from_all(np.full(20_000, 3), 5, 2, rng)
    share = np.bincount(draws.ravel(), minlength=6)[1:] / draws.shape[0]
    assert share[2] == 0  # the target, item 3
    assert share[[0, 1, 3, 4]] == pytest.approx([0.5] * 4, abs=0.02)
    with pytest.raises(ValueError, match="only 4 items differ"):
        negatives_from_all(np.asarray([1]), 5, 5, rng)


def test_repeats_hand_the_seen_before_heuristic_the_default_protocol():
    default = load_task("synthetic", synthetic=SMALL, seed=0, num_negatives=30)
    share = repeat_share(default)
    assert share > REPEAT_THRESHOLD  # the planted chain revisits items
    ranks = baseline_ranks(default, "seen-before-popularity")
    repeated = np.asarray(
        [t in h for h, t in zip(default.test.inputs, default.test.targets.tolist(), strict=True)]
    )
    assert (ranks[repeated] == 0).all()  # every repeated target is ranked first
    fair = with_negatives(default, "all", seed=0)
    assert repeat_share(fair) == share  # the same targets and histories
    fair_ranks = baseline_ranks(fair, "seen-before-popularity")
    assert (fair_ranks[repeated] > 0).any()  # history items now compete with the target


def test_repeat_warning_names_the_share_and_the_variant():
    assert repeat_warning(0.01) is None
    text = repeat_warning(0.3)
    assert "30.0%" in text and "--negatives-from all" in text and "seen before" in text
    assert repeat_warning(0.3, "all") is None


def test_the_command_offers_the_same_negatives_choices():
    from harness.commands import seqrec

    assert seqrec.NEGATIVES_FROM == NEGATIVES_FROM


FAST = ["--dim", "8", "--max-len", "6", "--epochs", "1", "--no-progress"]


def test_seqrec_reports_baselines_protocol_and_intervals(tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["seqrec", "--method", "sdpa", "--seeds", "0", "1", "--output", str(out), *FAST])
    assert code == 0
    captured = capsys.readouterr()
    assert "repeat-consumption" in captured.err and "--negatives-from all" in captured.err
    for word in ("popularity", "random", "seen-before-popularity", "95% t interval", "± "):
        assert word in captured.out, word
    result = json.loads(out.read_text())
    assert len(result["runs"]) == 2
    assert set(result["baselines"]) == {"popularity", "random", "seen-before-popularity"}
    assert set(result["baselines"]["popularity"]) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10"}
    protocol = result["protocol"]
    assert protocol["negatives_from"] == "history-excluded" and protocol["num_negatives"] == 100
    assert protocol["repeat_share"] > REPEAT_THRESHOLD and protocol["warning"]
    summary = result["summary"]["HR@10"]
    values = [r["test"]["HR@10"] for r in result["runs"]]
    assert summary["n"] == 2 and summary["mean"] == pytest.approx(sum(values) / 2)
    assert summary["low"] <= summary["mean"] <= summary["high"]
    task = load_task("synthetic", seed=0)  # the command's data: the same baselines
    assert result["baselines"]["popularity"] == pytest.approx(baseline_metrics(task)["popularity"])


def test_seqrec_negatives_from_all(tmp_path, capsys):
    out = tmp_path / "run.json"
    args = ["seqrec", "--method", "none", "--negatives-from", "all", "--output", str(out)]
    assert main([*args, *FAST]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "all; repeat share" in captured.out
    result = json.loads(out.read_text())
    assert result["protocol"]["negatives_from"] == "all" and result["protocol"]["warning"] is None
    assert "summary" not in result  # one seed: no interval
    fair = with_negatives(load_task("synthetic", seed=0), "all", num_negatives=100, seed=0)
    assert result["baselines"]["popularity"] == pytest.approx(baseline_metrics(fair)["popularity"])
