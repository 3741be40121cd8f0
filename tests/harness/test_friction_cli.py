"""The command line as a newcomer meets it: every option has help text, and seqrec's
unknown-method error names every method it accepts."""

from __future__ import annotations

import argparse

import pytest

from harness import cli
from harness.seqrec.sasrec import LISA_LAYERS, make_attention_layer
from impls import registry

# the options the friction report found without help, per command
REPORTED = {
    "bench": "--family --modes --passes --device --seed --memory-fraction --plots-dir "
    "--no-plots --no-progress",
    "memray": "--output-dir --no-flamegraph",
    "regress": "--repo --seed --output",
    "graph": "--sampler --estimator --task --epochs --batch-size --dim --lr --seed",
    "seqrec": "--dataset --plugin --batch-size --epochs --patience --lr --dropout --negatives "
    "--seeds --threads --no-progress",
    "leaderboard": "--plugin --repeats --dataset --seeds --synthetic-users --synthetic-items "
    "--threads --output-dir --no-progress",
}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _help(sub: argparse.ArgumentParser, option: str) -> str:
    (action,) = [a for a in sub._actions if option in a.option_strings]
    return " ".join((action.help or "").split())


def test_reported_options_have_help():
    commands = _commands()
    for name, options in REPORTED.items():
        for option in options.split():
            text = _help(commands[name], option)
            assert text and not text.startswith("default:"), (name, option)


def test_every_option_of_every_command_has_help():
    for name, sub in _commands().items():
        for action in sub._actions:
            if action.option_strings and action.help is not argparse.SUPPRESS:
                assert (action.help or "").strip(), (name, action.option_strings)


def test_seqrec_unknown_method_lists_every_accepted_name():
    with pytest.raises(ValueError) as raised:
        make_attention_layer("nope", 8)
    message = str(raised.value)
    assert message.startswith("unknown method 'nope'")
    for name in (*LISA_LAYERS, "none", "exact"):
        assert name in message, name
    for spec in registry.all_methods():
        assert spec.name in message, spec.name
    assert "module:attr" in message
