"""Multi-query associative recall: the generator's layout, a tiny training run that beats
chance, oracle and sdpa agreeing, error and skipped rows, and the ``mqar`` command."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from harness import cli
from harness.tasks import associative_recall as ar
from impls import registry


def test_every_query_target_is_the_value_paired_with_its_key_earlier():
    n, length, pairs, vocab = 20, 64, 6, 32
    inputs, targets = ar.make_mqar(n, length, pairs, vocab, seed=3)
    assert inputs.shape == targets.shape == (n, length)
    assert inputs.dtype == targets.dtype == torch.long
    keys, values = ar.token_sets(vocab)
    for x, y in zip(inputs.tolist(), targets.tolist(), strict=True):
        prefix = dict(zip(x[0 : 2 * pairs : 2], x[1 : 2 * pairs : 2], strict=True))
        assert len(prefix) == pairs  # distinct keys
        assert all(k in keys for k in prefix) and all(v in values for v in prefix.values())
        asked = [p for p, t in enumerate(y) if t != ar.IGNORE]
        assert len(asked) == pairs and min(asked) >= 2 * pairs
        assert sorted(x[p] for p in asked) == sorted(prefix)  # each key queried once
        for p in asked:
            assert y[p] == prefix[x[p]]
        # -100 everywhere else; the query region is filler apart from the queries
        assert all(y[p] == ar.IGNORE for p in range(length) if p not in asked)
        assert all(x[p] == ar.FILLER for p in range(2 * pairs, length) if p not in asked)


def test_generator_is_seeded():
    a = ar.make_mqar(8, 48, 4, 20, seed=11)
    b = ar.make_mqar(8, 48, 4, 20, seed=11)
    c = ar.make_mqar(8, 48, 4, 20, seed=12)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_examples": 0}, "num_examples"),
        ({"num_pairs": 0}, "num_pairs"),
        ({"length": 15}, "length"),  # < 4 * num_pairs = 16
        ({"vocab_size": 4}, "vocab_size"),
        ({"vocab_size": 8}, "vocab_size"),  # 3 key tokens < 4 pairs
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, name):
    args = {"num_examples": 2, "length": 16, "num_pairs": 4, "vocab_size": 16, "seed": 0}
    with pytest.raises(ValueError, match=name):
        ar.make_mqar(**(args | kwargs))


TINY = {"num_pairs": 2, "vocab_size": 16, "steps": 150, "batch": 16, "dim": 32, "lr": 1e-2}


def test_sdpa_learns_a_short_task_and_the_oracle_agrees():
    sdpa = ar.train_and_evaluate("sdpa", 32, **TINY)
    chance = sdpa["chance"]  # 1 / 8 value tokens
    assert chance == pytest.approx(1 / 8)
    assert sdpa["accuracy"] > 0.6, sdpa
    oracle = ar.train_and_evaluate("oracle", 32, **TINY)
    assert abs(oracle["accuracy"] - sdpa["accuracy"]) < 0.1, (oracle, sdpa)


def _raising_spec():
    def factory(dim, heads=None):
        def attn(q, k, v, *, causal=False, key_padding_mask=None):
            raise RuntimeError("boom from a fake method")

        return attn

    sdpa = registry.get_method("sdpa")
    return dataclasses.replace(sdpa, name="raiser", factory=factory, source="test")


def test_a_raising_method_is_an_error_row_and_the_grid_goes_on(tmp_path):
    out = tmp_path / "grid.json"
    rows = ar.run_grid(
        [_raising_spec(), "linformer", "sdpa"],
        [16],
        output=out,
        num_pairs=2,
        vocab_size=16,
        steps=2,
        batch=4,
        dim=16,
        eval_examples=8,
    )
    by_method = {r["method"]: r for r in rows}
    assert by_method["raiser"]["status"] == "error"
    assert "boom from a fake method" in by_method["raiser"]["error"]
    assert by_method["linformer"]["status"] == "skipped"
    assert "causal" in by_method["linformer"]["reason"]
    assert by_method["sdpa"]["status"] == "ok"
    written = json.loads(out.read_text())
    assert [r["status"] for r in written["rows"]] == ["error", "skipped", "ok"]
    table = ar.format_table(rows)
    assert "error" in table and "skip" in table


def test_calibrated_method_trains():
    row = ar.train_and_evaluate(
        "lisa_kmeans",
        16,
        num_pairs=2,
        vocab_size=16,
        steps=3,
        batch=4,
        dim=16,
        eval_examples=8,
        recalibrate_every=2,
        hyperparameters={"codewords": 4, "iters": 2},
    )
    assert 0.0 <= row["accuracy"] <= 1.0 and row["method"] == "lisa_kmeans"


def test_cli_runs_a_tiny_grid_and_writes_json(tmp_path, capsys):
    out = tmp_path / "mqar.json"
    code = cli.main(
        [
            "mqar",
            "--methods",
            "sdpa",
            "linear",
            "--lengths",
            "16",
            "32",
            "--steps",
            "3",
            "--num-pairs",
            "2",
            "--vocab-size",
            "16",
            "--batch",
            "4",
            "--dim",
            "16",
            "--eval-examples",
            "8",
            "--seed",
            "1",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "L=16" in printed and "L=32" in printed and "linear" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [(r["method"], r["length"], r["status"]) for r in rows] == [
        ("sdpa", 16, "ok"),
        ("sdpa", 32, "ok"),
        ("linear", 16, "ok"),
        ("linear", 32, "ok"),
    ]
    assert all(r["seed"] == 1 and r["steps"] == 3 for r in rows)


def test_cli_bad_settings_exit_2(tmp_path, capsys):
    code = cli.main(
        ["mqar", "--methods", "sdpa", "--lengths", "8", "--output", str(tmp_path / "x.json")]
    )
    assert code == 2
    assert "length" in capsys.readouterr().err


def test_lisa_layer_methods_train_every_parameter_and_the_soft_regulariser_counts():
    """The authors' LISA layers replace the attention step; their codebooks and
    projections are learned (gradients reach them), LISA-Soft adds its regulariser."""
    torch.manual_seed(0)
    for name in ("lisa-base", "lisa-base-nodecay", "lisa-soft"):
        spec = ar.LAYER_METHODS[name]
        model = ar.MQARModel(spec, vocab_size=16, max_len=24, dim=16, heads=2)
        tokens, targets = ar.make_mqar(4, 24, 2, 16, 0)
        logits = model(tokens)
        assert logits.shape == (4, 24, 16)
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=ar.IGNORE
        )
        reg = model.regularizer()
        assert (reg is not None) == (name == "lisa-soft")
        (loss if reg is None else loss + reg).backward()
        layer = model.blocks[0].layer
        for p in (layer.quantizer.codebooks, layer.w_query, layer.w_key, layer.w_value):
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
        assert ar.skip_reason(spec, head_dim=8) is None
    assert model.blocks[0].layer.gamma < 1
    assert ar.LAYER_METHODS["lisa-base-nodecay"].factory(16).gamma == 1.0
    with pytest.raises(ValueError, match="takes no hyperparameters"):
        ar.MQARModel(spec, vocab_size=16, max_len=24, dim=16, hyperparameters={"gamma": 1})


def test_lisa_layer_row_in_the_grid():
    (row,) = ar.run_grid(
        ["lisa-soft"], [16], num_pairs=2, vocab_size=16, steps=2, batch=4, dim=16, eval_examples=8
    )
    assert row["status"] == "ok" and row["method"] == "lisa-soft"
    assert 0.0 <= row["accuracy"] <= 1.0 and row["final_loss"] > 0


def test_grid_rows_survive_a_hang_and_a_nan_in_the_worker(monkeypatch):
    """Run through the isolated worker, a method that hangs is a timeout row and one that
    returns NaN an error row (never an accuracy); the grid goes on to the next method."""
    from pathlib import Path

    from harness.runner.isolation import IsolatedRunner, Limits

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "runner"))
    methods = ["misbehaving_methods:HANGS", "misbehaving_methods:RETURNS_NAN", "sdpa"]
    tiny = dict(steps=2, num_pairs=2, vocab_size=16, batch=4, dim=16, eval_examples=8)
    with IsolatedRunner(Limits(timeout_s=20)) as runner:
        rows = ar.run_grid(methods, [16], runner=runner, **tiny)
    by_method = {r["method"]: r for r in rows}
    hung, nan = by_method[methods[0]], by_method[methods[1]]
    assert hung["status"] == "timeout" and "accuracy" not in hung
    assert nan["status"] == "error" and "FloatingPointError" in nan["error"]
    assert "not finite" in nan["error"] or "nan" in nan["error"]
    assert "accuracy" not in nan and by_method["sdpa"]["status"] == "ok"
    table = ar.format_table(rows)
    assert "timeout" in table and "error" in table
