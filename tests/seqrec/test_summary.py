"""harness.seqrec.summary and `python -m harness seqrec-table`: per-seed seqrec files
combined into one table with intervals and paired differences."""

from __future__ import annotations

import json
import math

import pytest

from harness.cli import main
from harness.seqrec.statistics import t_quantile
from harness.seqrec.summary import format_markdown, load_runs, summarise

CONFIG = {"d_model": 8, "max_len": 10, "epochs": 3, "patience": 3, "batch_size": 4,
          "lr": 1e-3, "dropout": 0.1, "betas": [0.9, 0.98]}  # fmt: skip
BASELINES = {"popularity": {"HR@10": 0.5, "NDCG@10": 0.3, "HR@5": 0.4, "NDCG@5": 0.25}}


def _record(method, seed, ndcg, *, lisa=None, status="ok", **config):
    metrics = {"HR@10": ndcg + 0.2, "NDCG@10": ndcg, "HR@5": ndcg + 0.1, "NDCG@5": ndcg - 0.05}
    return {
        "method": method, "status": status, "config": {**CONFIG, **config, "seed": seed},
        "dataset": "tiny", "data_checksum": "abc", "test": metrics, "lisa_config": lisa,
        "epoch_time_s": 2.0 + seed, "train_step_peak_bytes": 2**20 * (10 + seed),
        "best_epoch": 3, "epochs_run": 3,
    }  # fmt: skip


def _write(tmp_path, name, *records, baselines=BASELINES, negatives=100):
    path = tmp_path / name
    source = {"commit": "0123456789abcdef", "dirty": False, "version": "0.1"}
    protocol = {
        "num_negatives": negatives,
        "negatives_from": "history-excluded",
        "negatives_seed": 0,
    }
    doc = {"runs": list(records), "baselines": baselines, "provenance": {"source": source},
           "protocol": protocol}  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def test_means_intervals_and_paired_verdicts(tmp_path):
    def seeds(name, values):
        runs = (_record(name, s, v) for s, v in enumerate(values))
        return _write(tmp_path, f"{name}.json", *runs)

    files = [
        seeds("sdpa", [0.50, 0.52, 0.51]),
        seeds("good", [0.551, 0.569, 0.561]),  # 0.05 above sdpa's each seed, +- 0.001: better
        seeds("tie", [0.51, 0.51, 0.50]),  # differences of both signs: within noise
        _write(tmp_path, "one.json", _record("one", 1, 0.40)),
    ]
    records, baselines = load_runs(files)
    summary = summarise(records, reference="sdpa")
    rows = {r["label"]: r for r in summary["rows"]}
    assert [r["label"] for r in summary["rows"]] == ["good", "sdpa", "tie", "one"]
    sdpa = rows["sdpa"]["NDCG@10"]
    half = t_quantile(0.95, 2) * 0.01 / math.sqrt(3)  # sd of 0.50, 0.52, 0.51 is 0.01
    assert sdpa["mean"] == pytest.approx(0.51) and sdpa["half_width"] == pytest.approx(half)
    assert rows["sdpa"]["paired"] is None and rows["sdpa"]["epoch_time_s"] == 3.0
    assert rows["sdpa"]["step_peak_mib"] == pytest.approx(12.0)
    good = rows["good"]["paired"]["NDCG@10"]
    assert good["within_noise"] is False and good["difference"]["mean"] == pytest.approx(0.151 / 3)
    assert rows["tie"]["paired"]["NDCG@10"]["within_noise"] is True
    one = rows["one"]["paired"]["NDCG@10"]  # one shared seed: a difference, no verdict
    assert one["within_noise"] is None and one["difference"]["mean"] == pytest.approx(-0.12)
    text = format_markdown(summary, baselines)
    assert "| good | 0,1,2 |" in text and ", better |" in text and ", within noise |" in text
    assert "(1 shared seed)" in text and "| popularity (model-free) | - | 0.5000 |" in text
    assert "window 10" in text and "Code: 0123456789ab." in text


def test_lisa_flags_label_the_row_and_failed_runs_are_not_counted(tmp_path):
    from impls.attention.lisa_layers import AUTHORS, PROJECT

    authors = {f: getattr(AUTHORS, f) for f in AUTHORS.__dataclass_fields__}
    project = {f: getattr(PROJECT, f) for f in PROJECT.__dataclass_fields__}
    path = _write(
        tmp_path, "lisa.json",
        _record("lisa-base", 0, 0.5, lisa=authors),
        _record("lisa-base", 0, 0.4, lisa={**authors, "item_init": "normal"}),
        _record("lisa-base", 1, 0.3, lisa=project),
        _record("lisa-base", 2, 0.0, lisa=authors, status="timeout after 9 s"),
    )  # fmt: skip
    summary = summarise(load_runs([path])[0])
    rows = {r["label"]: r for r in summary["rows"]}
    assert rows["lisa-base"]["seeds"] == [0]
    assert "timeout after 9 s" in rows["lisa-base"]["failed"][0]
    assert rows["lisa-base [item_init=normal]"]["seeds"] == [0]
    assert any(label.startswith("lisa-base [item_init=normal, q") for label in rows)
    assert "not counted: " in format_markdown(summary)


def test_mismatched_protocols_duplicate_seeds_and_bad_files_are_refused(tmp_path):
    a = _write(tmp_path, "a.json", _record("sdpa", 0, 0.5))
    longer = _write(tmp_path, "b.json", _record("linear", 0, 0.5, max_len=20))
    with pytest.raises(ValueError, match=r"b\.json: not the protocol .*max_len: 10 vs 20"):
        summarise(load_runs([a, longer])[0])
    fewer = _write(tmp_path, "f.json", _record("linear", 0, 0.5), negatives=50)
    with pytest.raises(ValueError, match=r"f\.json: not the protocol .*num_negatives': 100"):
        summarise(load_runs([a, fewer])[0])
    again = _write(tmp_path, "c.json", _record("sdpa", 0, 0.4))
    with pytest.raises(ValueError, match=r"c\.json: sdpa seed 0 also in .*a\.json"):
        summarise(load_runs([a, again])[0])
    other = _write(tmp_path, "d.json", _record("linear", 0, 0.5), baselines={"random": {}})
    with pytest.raises(ValueError, match=r"d\.json: its baselines differ"):
        load_runs([a, other])
    (tmp_path / "e.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match=r"e\.json: expected a `seqrec --output` file"):
        load_runs([tmp_path / "e.json"])


def test_command_prints_and_writes_the_table(tmp_path, capsys):
    a = _write(tmp_path, "a.json", _record("sdpa", 0, 0.5), _record("sdpa", 1, 0.52))
    b = _write(tmp_path, "b.json", _record("linear", 0, 0.45), _record("linear", 1, 0.46))
    md, js = tmp_path / "t.md", tmp_path / "t.json"
    assert main(["seqrec-table", str(a), str(b), "--output", str(md), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert out == md.read_text() and "| linear | 0,1 |" in out
    doc = json.loads(js.read_text())
    assert doc["reference"] == "sdpa" and doc["baselines"] == BASELINES
    assert main(["seqrec-table", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: not readable" in capsys.readouterr().err
