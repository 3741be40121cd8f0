"""The registry itself: built-in entries are complete, sources resolve, the CLI prints the
table and runs the conformance command."""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest
import torch

from harness.conformance import entry_problems
from harness.conformance.broken import PEEK_AHEAD
from impls import registry
from impls.registry import MethodSpec


def test_entries_are_complete():
    """Built-ins only (installed plugins are checked by the conformance command): they meet
    the suite's requirements and, by this project's policy, state an oracle identity and a
    correct gradient capability."""
    specs = list(registry.builtin_methods())
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    expected = {
        "oracle",
        "sdpa",
        "xformers_mea",
        "lisa_kmeans",
        "linear",
        "performer",
        "local_window",
        "lsh",
        "linformer",
    }
    assert expected <= set(names)
    for s in specs:
        assert s.family == "attention"
        assert s.summary and s.oracle_identity, s.name
        assert s.time_exponent > 0 and s.memory_exponent > 0
        assert s.capabilities.dtypes and s.capabilities.devices
        assert s.capabilities.causal or s.capabilities.bidirectional
        if not s.exact and s.budget is not None:
            assert s.budget in s.hyperparameters, s.name
            assert len(s.budget_values) >= 2, s.name
        ok, reason = registry.availability(s)
        assert ok or reason, f"{s.name} is unavailable without a reason"
        assert entry_problems(s) == [], s.name
        assert s.supports_backward, s.name  # every built-in is differentiable
    by_name = {s.name: s for s in specs}
    assert by_name["lisa_kmeans"].grad_inputs == ("q",)  # k, v only choose the codes
    assert all(s.grad_inputs == ("q", "k", "v") for n, s in by_name.items() if n != "lisa_kmeans")


def test_unavailable_methods_stay_listed_with_a_reason():
    spec = registry.get_method("xformers_mea")
    ok, reason = registry.availability(spec)
    if not torch.cuda.is_available():
        assert not ok and "CUDA" in reason
    table = registry.format_table(registry.all_methods())
    assert "xformers_mea" in table


def test_linformer_refuses_causal_use():
    spec = registry.get_method("linformer")
    with pytest.raises(ValueError, match="does not support causal"):
        registry.check_request(spec, causal=True)
    registry.check_request(spec, causal=False, dtype=torch.float32, device="cpu")


def test_check_request_rejects_unsupported_dtype_and_device():
    spec = registry.get_method("xformers_mea")
    with pytest.raises(ValueError, match="dtype"):
        registry.check_request(spec, causal=False, dtype=torch.float64)
    with pytest.raises(ValueError, match="cpu"):
        registry.check_request(spec, causal=False, device="cpu")


def test_build_validates_hyperparameters_and_calibration():
    with pytest.raises(ValueError, match="no hyperparameter"):
        registry.build(registry.get_method("performer"), 8, 2, nb_featurez=3)
    with pytest.raises(ValueError, match="calibration"):
        registry.build(registry.get_method("lisa_kmeans"), 8, 2)


def test_unfitted_lisa_raises_instead_of_guessing():
    attn = registry.get_method("lisa_kmeans").factory(8, 2, codewords=4)
    q = torch.randn(1, 2, 5, 8)
    with pytest.raises(RuntimeError, match="not fitted"):
        attn(q, q, q)


def test_module_attr_reference_resolves():
    (spec,) = registry.resolve("harness.conformance.broken:PEEK_AHEAD")
    assert spec.name == PEEK_AHEAD.name and spec.source == "harness.conformance.broken:PEEK_AHEAD"
    specs = registry.resolve("harness.conformance.broken:all_broken")  # returns several
    assert len(specs) == 3
    assert registry.get_method("harness.conformance.broken:PEEK_AHEAD").name == "broken_peek_ahead"
    with pytest.raises(ValueError, match="module:attr|package.module:attr"):
        registry.resolve("no_colon_here")
    with pytest.raises(ValueError, match="cannot import"):
        registry.resolve("surely_not_a_module_xyz:THING")
    with pytest.raises(ValueError, match="no attribute"):
        registry.resolve("harness.conformance.broken:MISSING")


def test_env_var_adds_methods(monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, "harness.conformance.broken:PEEK_AHEAD")
    assert "broken_peek_ahead" in [s.name for s in registry.all_methods()]
    peek = "harness.conformance.broken:PEEK_AHEAD"
    monkeypatch.setenv(registry.ENV_VAR, f"{peek},{peek}")
    with pytest.raises(ValueError, match="two methods are named"):
        registry.all_methods()


class _FakeEntryPoint:
    def __init__(self, name, value, obj):
        self.name, self.value, self._obj = name, value, obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_entry_point_group(monkeypatch):
    seen = {}

    def fake_entry_points(*, group):
        seen["group"] = group
        return [
            _FakeEntryPoint("peek", "harness.conformance.broken:PEEK_AHEAD", PEEK_AHEAD),
            _FakeEntryPoint("bad", "missing:thing", ImportError("no module named missing")),
        ]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    specs, failures = registry.entry_point_methods()
    assert seen["group"] == "lisa_bench.attention" == registry.ENTRY_POINT_GROUP
    assert [s.name for s in specs] == ["broken_peek_ahead"]
    assert specs[0].source.startswith("entry point peek")
    assert failures and failures[0][0] == "bad"
    assert "broken_peek_ahead" in [s.name for s in registry.all_methods(env=False)]


def test_spec_must_be_a_methodspec():
    with pytest.raises(TypeError, match="MethodSpec"):
        registry.resolve("harness.conformance.workload:MODES")
    assert isinstance(registry.builtin_methods()[0], MethodSpec)


def test_methods_command_prints_the_table(capsys):
    from harness.commands import methods

    parser = argparse.ArgumentParser()
    methods.register(parser.add_subparsers())
    args = parser.parse_args(["methods", "--plugin", "harness.conformance.broken:PEEK_AHEAD", "-v"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in (
        "oracle",
        "sdpa",
        "xformers_mea",
        "lisa_kmeans",
        "linformer",
        "broken_peek_ahead",
        "available",
        "oracle identity",
    ):
        assert name in out
    args = parser.parse_args(["methods", "--plugin", "nope_module_xyz:X"])
    assert args.func(args) == 2


def test_methods_command_is_wired_into_the_cli():
    from harness import cli

    assert "harness.commands.methods" in cli.COMMAND_MODULES
    assert "harness.commands.conformance" in cli.COMMAND_MODULES


def test_conformance_command_names_a_missing_field_and_refuses_unknown_names(capsys, monkeypatch):
    import dataclasses

    from harness.commands import conformance
    from harness.conformance import runner

    parser = argparse.ArgumentParser()
    conformance.register(parser.add_subparsers())
    args = parser.parse_args(["conformance", "--method", "no_such_method_xyz"])
    assert args.func(args) == 2
    assert "unknown method 'no_such_method_xyz'" in capsys.readouterr().err

    incomplete = dataclasses.replace(PEEK_AHEAD, oracle_reference=registry._ref_exact)
    ran = {}

    def fake_resolve(methods, plugins):
        return [incomplete]

    def fake_run(specs, **kwargs):
        ran["specs"] = specs
        return 1

    monkeypatch.setattr(runner, "resolve_methods", fake_resolve)
    monkeypatch.setattr(runner, "run", fake_run)
    args = parser.parse_args(["conformance", "--method", "mod:INCOMPLETE"])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "method 'broken_peek_ahead'" in err and "oracle_identity: required" in err
    assert ran["specs"] == [incomplete]  # the suite still runs (its entry test fails too)


def test_public_validate_qkv_satisfies_the_bad_input_checks():
    """What plugin authors import (no private module): a method validating with
    ``harness.conformance.validate_qkv`` passes the suite's 13 bad-input cases, and
    importing it does not import pytest."""
    import subprocess
    import sys

    from harness.conformance import validate_qkv
    from harness.conformance.checks import check_bad_inputs
    from harness.conformance.workload import padding_mask, qkv
    from reference.attention import exact_attention

    def attn(q, k, v, *, causal=False, key_padding_mask=None):
        validate_qkv(q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="mine")
        return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)

    q, k, v = qkv(2, 2, 9, 4, 3, seed=0)
    for causal in (True, False):
        check_bad_inputs(attn, q, k, v, padding_mask(2, 9), causal=causal)
    code = "import sys, harness.conformance as c; c.validate_qkv; print('pytest' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
