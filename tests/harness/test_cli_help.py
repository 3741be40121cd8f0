"""The command line as a newcomer meets it: ``--version``, every option's default shown in
``--help``, and no reStructuredText markup (double backticks, roles) in help output."""

from __future__ import annotations

import argparse
import importlib.metadata
import re

import pytest

from harness import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_version_prints_the_distribution_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    expected = importlib.metadata.version("lisa-bench")
    assert capsys.readouterr().out.strip() == f"lisa-bench {expected}"


def test_help_output_has_no_rst_markup():
    parser = cli.build_parser()
    texts = {"": parser.format_help()}
    texts |= {name: sub.format_help() for name, sub in _subparsers(parser).items()}
    assert len(texts) == 1 + len(cli.COMMAND_MODULES)
    for name, text in texts.items():
        assert "``" not in text, (name, text)
        assert not re.search(r":(func|mod|class|meth):`", text), (name, text)
    # the markup became plain single backticks, the words are still there
    assert "`python -m harness memray`" in texts["memray"]


def test_every_option_with_a_default_shows_it():
    for name, sub in _subparsers(cli.build_parser()).items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if not action.option_strings or action.default in (None, False, [], (), ""):
                continue
            if action.default is argparse.SUPPRESS:
                continue
            help_text = " ".join((action.help or "").split())
            shown = f"default: {action.default}" in text or "default" in help_text.lower()
            assert shown, (name, action.option_strings, action.default)


def test_options_without_help_still_show_their_default():
    assert "--version" in cli.build_parser().format_help()
    memray = _subparsers(cli.build_parser())["memray"]
    assert "default: results/memray" in " ".join(memray.format_help().split())


def test_command_formatters_are_kept_and_wrapped():
    """A command asking for RawDescriptionHelpFormatter keeps its line breaks and still
    gets the defaults and plain backticks."""
    fmt = cli.plain_formatter(argparse.RawDescriptionHelpFormatter)
    assert issubclass(fmt, argparse.RawDescriptionHelpFormatter)
    assert issubclass(fmt, argparse.ArgumentDefaultsHelpFormatter)
    parser = cli.HelpParser(prog="x", description="line one ``a``\n  line two", formatter_class=fmt)
    parser.add_argument("--n", type=int, default=3, help="how many :func:`f` calls")
    text = parser.format_help()
    assert "line one `a`\n  line two" in text
    assert "how many `f` calls (default: 3)" in " ".join(text.split())
    assert cli.plain_formatter(fmt) is fmt
