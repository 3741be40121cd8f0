"""Seed statistics of MQAR grids: intervals and paired differences checked against
independent formulas, merging of grid files (and its refusals), several seeds in one grid
and the ``mqar --seeds`` / ``mqar-summary`` commands."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from harness import cli
from harness.tasks import associative_recall as ar
from harness.tasks.recall_summary import format_summary, load_grids, summarise

TINY = dict(num_pairs=2, vocab_size=16, steps=3, batch=4, dim=16, eval_examples=8)


def _row(method, length, seed, accuracy, status="ok"):
    row = {"method": method, "length": length, "seed": seed, "status": status}
    if status == "ok":
        row |= {"accuracy": accuracy, "chance": 0.25}
    return row


def _grid(path, rows, **settings):
    path.write_text(
        json.dumps({"task": "mqar", "settings": {"steps": 3, "seed": 0, **settings}, "rows": rows})
    )
    return path


def test_mean_interval_and_paired_difference_match_the_t_formulas():
    sdpa = [0.9, 1.0, 0.95]
    lin = [0.30, 0.20, 0.40]
    rows = [_row("sdpa", 64, s, a) for s, a in enumerate(sdpa)]
    rows += [_row("linear", 64, s, a) for s, a in enumerate(lin)]
    by = {(e["method"], e["length"]): e for e in summarise(rows)}
    t = stats.t.ppf(0.975, 2)
    acc = by[("linear", 64)]["accuracy"]
    sd = math.sqrt(sum((a - 0.3) ** 2 for a in lin) / 2)
    assert acc["mean"] == pytest.approx(0.3)
    assert acc["half_width"] == pytest.approx(t * sd / math.sqrt(3))
    diffs = [a - b for a, b in zip(lin, sdpa, strict=True)]
    mean_d = sum(diffs) / 3
    sd_d = math.sqrt(sum((d - mean_d) ** 2 for d in diffs) / 2)
    versus = by[("linear", 64)]["versus_reference"]
    assert versus["difference"]["mean"] == pytest.approx(mean_d)
    assert versus["difference"]["half_width"] == pytest.approx(t * sd_d / math.sqrt(3))
    assert versus["within_noise"] is False and versus["seeds"] == [0, 1, 2]
    assert by[("sdpa", 64)]["versus_reference"] is None
    # 0.3 ± 0.248 = [0.052, 0.548] contains chance 0.25; sdpa's interval does not
    assert by[("linear", 64)]["at_chance"] is True
    assert by[("sdpa", 64)]["at_chance"] is False


def test_pairing_uses_only_shared_seeds_and_reports_ties():
    rows = [_row("sdpa", 32, s, a) for s, a in [(0, 0.5), (1, 0.6), (2, 0.7)]]
    rows += [_row("lsh", 32, s, a) for s, a in [(1, 0.62), (2, 0.69), (3, 0.1)]]
    rows.append(_row("linear", 32, 9, 0.2))  # no seed shared with sdpa: no pairing
    (_, lsh, linear) = summarise(rows)
    assert linear["versus_reference"] is None and linear["n"] == 1
    assert lsh["versus_reference"]["seeds"] == [1, 2]
    assert lsh["versus_reference"]["difference"]["mean"] == pytest.approx(0.005)
    assert lsh["versus_reference"]["within_noise"] is True
    assert "tie" in format_summary(summarise(rows))


def test_failed_rows_are_counted_not_averaged_and_one_seed_has_no_interval():
    rows = [
        _row("sdpa", 32, 0, 0.9),
        _row("sdpa", 32, 1, None, status="timeout"),
        _row("lsh", 32, 0, None, status="error"),
    ]
    sdpa, lsh = summarise(rows)
    assert sdpa["n"] == 1 and sdpa["accuracy"]["half_width"] is None
    assert sdpa["not_ok"] == {1: "timeout"} and sdpa["at_chance"] is None
    assert lsh["accuracy"] is None and lsh["versus_reference"] is None
    text = format_summary([sdpa, lsh])
    assert "0.900 (n=1)" in text and "error" in text
    assert [e["n"] for e in summarise(rows[:1])] == [1]


def test_at_chance_marks_an_interval_containing_chance():
    rows = [_row("lisa", 16, s, a) for s, a in enumerate([0.24, 0.26, 0.25])]
    rows += [_row("sdpa", 16, s, a) for s, a in enumerate([0.99, 1.0, 0.98])]
    rows += [_row("lsh", 16, s, a) for s, a in enumerate([0.10, 0.11, 0.12])]  # below chance
    lisa, sdpa, lsh = summarise(rows)
    assert lisa["at_chance"] is True and sdpa["at_chance"] is False
    assert lsh["at_chance"] is False
    assert "~c" in format_summary([lisa, sdpa]).splitlines()[2]


def test_load_grids_merges_files_and_refuses_what_cannot_be_merged(tmp_path):
    a = _grid(tmp_path / "a.json", [_row("sdpa", 32, 0, 0.9), _row("lsh", 32, 0, None, "error")])
    # an older file: rows without a seed take the file's seed
    old = [{"method": "sdpa", "length": 32, "status": "ok", "accuracy": 0.8, "chance": 0.25}]
    b = _grid(tmp_path / "b.json", old + [_row("lsh", 32, 0, 0.3)], seed=1)
    b_rows = json.loads(b.read_text())["rows"]
    b_rows[1]["seed"] = 0  # the finished lsh run of seed 0 replaces the error row
    b.write_text(json.dumps({**json.loads(b.read_text()), "rows": b_rows}))
    for order in ([a, b], [b, a]):  # the ok row wins whichever file comes first
        settings, rows = load_grids(order)
        assert settings == {"steps": 3}
        got = sorted((r["method"], r["seed"], r["status"]) for r in rows)
        assert got == [("lsh", 0, "ok"), ("sdpa", 0, "ok"), ("sdpa", 1, "ok")]

    other = _grid(tmp_path / "c.json", [_row("sdpa", 32, 2, 0.9)], steps=300)
    with pytest.raises(ValueError, match=r"c\.json.*\['steps'\]"):
        load_grids([a, other])
    clash = _grid(tmp_path / "d.json", [_row("sdpa", 32, 0, 0.7)])
    with pytest.raises(ValueError, match="deterministic"):
        load_grids([a, clash])
    (tmp_path / "e.json").write_text(json.dumps({"task": "bench", "rows": []}))
    with pytest.raises(ValueError, match="not an MQAR grid"):
        load_grids([tmp_path / "e.json"])
    with pytest.raises(ValueError, match="paths"):
        load_grids([])


def test_grid_of_several_seeds_reproduces_each_single_seed_run(tmp_path):
    rows = ar.run_grid(["sdpa"], [16], seeds=[3, 5], output=tmp_path / "g.json", **TINY)
    assert [(r["seed"], r["status"]) for r in rows] == [(3, "ok"), (5, "ok")]
    alone = ar.train_and_evaluate("sdpa", 16, seed=5, **TINY)
    assert rows[1]["final_loss"] == alone["final_loss"]
    assert rows[1]["accuracy"] == alone["accuracy"]
    assert rows[0]["final_loss"] != rows[1]["final_loss"]  # other seed, other data
    written = json.loads((tmp_path / "g.json").read_text())
    assert written["seeds"] == [3, 5] and len(written["rows"]) == 2
    assert "±" in ar.format_table(rows)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": []}, "distinct"),
        ({"seeds": [1], "seed": 2}, "not both"),
    ],
)
def test_bad_seeds_are_refused_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ar.run_grid(["sdpa"], [16], **kwargs)


def test_cli_seeds_and_summary(tmp_path, capsys):
    first, second = tmp_path / "s01.json", tmp_path / "s2.json"
    common = ["mqar", "--methods", "sdpa", "linear", "--lengths", "16", "--steps", "3"]
    common += ["--num-pairs", "2", "--vocab-size", "16", "--batch", "4", "--dim", "16"]
    common += ["--eval-examples", "8"]
    assert cli.main([*common, "--seeds", "0", "1", "--output", str(first)]) == 0
    assert "paired difference to sdpa" in capsys.readouterr().out
    assert cli.main([*common, "--seed", "2", "--output", str(second)]) == 0
    capsys.readouterr()
    merged = tmp_path / "summary.json"
    code = cli.main(["mqar-summary", str(first), str(second), "--output", str(merged)])
    assert code == 0
    assert "seeds [0, 1, 2]" in capsys.readouterr().out
    doc = json.loads(merged.read_text())
    linear = next(e for e in doc["summary"] if e["method"] == "linear")
    assert linear["n"] == 3 and linear["versus_reference"]["seeds"] == [0, 1, 2]

    bad = tmp_path / "bad.json"
    assert cli.main([*common[:-2], "--eval-examples", "4", "--output", str(bad)]) == 0
    capsys.readouterr()
    assert cli.main(["mqar-summary", str(first), str(bad)]) == 2
    assert "eval_examples" in capsys.readouterr().err


def test_the_header_lists_seeds_in_numeric_order():
    rows = [_row("sdpa", 16, s, 0.9) for s in (10, 2)]
    assert "seeds [2, 10]" in format_summary(summarise(rows)).splitlines()[0]
