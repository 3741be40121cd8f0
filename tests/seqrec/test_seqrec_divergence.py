"""A method that returns NaN never scores: evaluation counts its targets as misses, and a
NaN training loss stops training with a ``diverged`` status (record, command, exit code)."""

from __future__ import annotations

import json
import math

import torch

from harness.cli import main
from harness.seqrec.sasrec import SASRec, make_attention_layer
from harness.seqrec.synthetic_sequences import SyntheticConfig
from harness.seqrec.training import TrainConfig, evaluate, load_task, train_and_evaluate

TINY = SyntheticConfig(num_users=120, num_items=60, min_len=6, max_len=12)
ZERO = {"HR@5": 0.0, "NDCG@5": 0.0, "HR@10": 0.0, "NDCG@10": 0.0}


def _config(**kw) -> TrainConfig:
    base = dict(d_model=8, max_len=12, batch_size=32, epochs=3, seed=0, measure_memory=False)
    return TrainConfig(**{**base, **kw})


def test_evaluating_a_nan_model_gives_zero_not_one():
    task = load_task("synthetic", synthetic=TINY, num_negatives=20, seed=0)
    torch.manual_seed(0)
    layer = make_attention_layer("nan_methods:NAN", 8)
    model = SASRec(task.data.num_items, layer, d_model=8, max_len=12)
    with torch.no_grad():
        seqs = torch.randint(1, task.data.num_items + 1, (2, 12))
        assert torch.isnan(model(seqs)).all()  # the premise: every score is NaN
    assert evaluate(model, task.test, max_len=12, batch_size=64) == ZERO


def test_nan_attention_diverges_at_the_first_step_and_scores_zero():
    task = load_task("synthetic", synthetic=TINY, num_negatives=20, seed=0)
    rec = train_and_evaluate(task, "nan_methods:NAN", _config(), progress=False)
    assert rec["status"] == "diverged: non-finite loss at epoch 1 step 1"
    assert rec["test"] == ZERO and rec["valid"] == ZERO
    assert rec["epochs_run"] == 0 and rec["epoch_time_s"] is None
    assert rec["train_step_peak_bytes"] is None
    json.dumps(rec)  # still a JSON-ready record


def test_divergence_after_good_epochs_still_reports_no_score():
    """Exact attention for one epoch (which validates above zero), NaN from epoch 2 step 2
    on: the run stops there and its earlier validation score is not reported."""
    task = load_task("synthetic", synthetic=TINY, num_negatives=20, seed=0)
    cfg = _config()
    users = sum(1 for s in task.train if len(s) > 1)
    batches = math.ceil(users / cfg.batch_size)
    rec = train_and_evaluate(
        task, "nan_methods:NAN_LATER", cfg, hyperparameters={"after": batches + 1}, progress=False
    )
    assert rec["status"] == "diverged: non-finite loss at epoch 2 step 2"
    assert rec["epochs_run"] == 1 and rec["history"][0]["NDCG@10"] > 0
    assert rec["test"] == ZERO and rec["valid"] == ZERO


def test_a_healthy_run_says_ok():
    task = load_task("synthetic", synthetic=TINY, num_negatives=20, seed=0)
    rec = train_and_evaluate(task, "sdpa", _config(epochs=1), progress=False)
    assert rec["status"] == "ok" and rec["epoch_time_s"] is not None


def test_seqrec_command_prints_divergence_and_exits_non_zero(tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(
        [
            "seqrec", "--method", "nan_methods:NAN", "--epochs", "2", "--dim", "8",
            "--max-len", "8", "--negatives", "5", "--no-progress", "--output", str(out),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "diverged: non-finite loss at epoch 1 step 1" in captured.err
    assert "HR@10" not in captured.out  # no score printed for a diverged run
    (run,) = json.loads(out.read_text())["runs"]
    assert run["status"].startswith("diverged") and run["test"]["HR@10"] == 0.0
