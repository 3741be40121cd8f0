"""noxfile.py logic: settings parsing, interpreter checks, install stamps (no venv, no
network: nothing here creates an environment or runs pip)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

nox = pytest.importorskip("nox")


def _load_noxfile():
    spec = importlib.util.spec_from_file_location("lisa_bench_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


nf = _load_noxfile()


# ------------------------------------------------------------------ LISA_BENCH_INSTALL


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("   ", []),
        ("-e ../my-method", ["-e", "../my-method"]),
        ("--editable ../my-method", ["--editable", "../my-method"]),
        ('-e "../my method"', ["-e", "../my method"]),
        ("-e ../a -e ../b", ["-e", "../a", "-e", "../b"]),
        ("mypkg==1.2 other>=3", ["mypkg==1.2", "other>=3"]),
        ("../dist/mypkg-1.0-py3-none-any.whl", ["../dist/mypkg-1.0-py3-none-any.whl"]),
        ("-e ../my-method[extra]", ["-e", "../my-method[extra]"]),
    ],
)
def test_parse_install_args(value, expected):
    assert nf.parse_install_args(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('-e "../unclosed', "No closing quotation"),
        ("-e", "-e needs a path"),
        ("-e --no-deps", "-e needs a path"),
        ("--no-deps", "names no package"),
    ],
)
def test_parse_install_args_refuses(value, message):
    with pytest.raises(nf.SetupError, match=message):
        nf.parse_install_args(value)


def test_project_steps_order_and_extra(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "pyproject.toml").write_text("[project]\nname='p'\n")
    steps = nf.project_steps({"LISA_BENCH_INSTALL": "-e plugin"}, root=tmp_path)
    assert [label for label, _, _ in steps] == ["torch", "project", "LISA_BENCH_INSTALL"]
    assert steps[0][1] == ["torch==2.13.0"]
    assert steps[1][1] == ["-e", ".[dev,gpu,graph,peers]"]
    assert steps[2][1] == ["-e", "plugin"]
    assert len(steps[2][2]) == 1  # the plugin's build files are part of its key
    assert [label for label, _, _ in nf.project_steps({}, root=tmp_path)] == ["torch", "project"]


def test_torch_install_args():
    assert nf.torch_install_args({}) == ["torch==2.13.0"]
    assert nf.torch_install_args({"LISA_BENCH_TORCH": "torch==2.14.1 --no-deps"}) == [
        "torch==2.14.1",
        "--no-deps",
    ]
    url = "https://example.invalid/whl/cpu"
    assert nf.torch_install_args({"LISA_BENCH_TORCH_INDEX": url}) == [
        "torch==2.13.0",
        "--index-url",
        url,
    ]


def test_local_paths_and_fingerprints(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text("a")
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"x")
    found = nf.local_paths(["-e", "pkg[extra]", "w.whl", "notapath==1", "--no-deps"], tmp_path)
    assert found == [pkg.resolve(), wheel.resolve()]
    before = nf.path_fingerprint(pkg)
    (pkg / "pyproject.toml").write_text("b")
    assert nf.path_fingerprint(pkg) != before
    (pkg / "module.py").write_text("code")  # code is followed by the editable install
    assert nf.path_fingerprint(pkg) == nf.path_fingerprint(pkg)


# ------------------------------------------------------------------------ install stamp


def _chain(**overrides):
    steps = {"torch": ["torch==2.13.0"], "project": ["-e", ".[dev]"]}
    steps.update(overrides)
    return nf.make_steps([(label, args, []) for label, args in steps.items()])


def _done(chain, added=()):
    return [nf.Done(step.key, tuple(added) if step.tracked else ()) for step in chain]


def test_stamp_skips_when_nothing_changed(tmp_path):
    chain = _chain()
    assert nf.first_stale_step(nf.read_stamp(tmp_path), chain) == 0  # no stamp: all
    nf.write_stamp(tmp_path, _done(chain))
    assert nf.read_stamp(tmp_path) == _done(chain)
    assert nf.first_stale_step(nf.read_stamp(tmp_path), _chain()) == len(chain)


def test_changed_step_reruns_from_there(tmp_path):
    nf.write_stamp(tmp_path, _done(_chain()))
    done = nf.read_stamp(tmp_path)
    assert nf.first_stale_step(done, _chain(project=["-e", ".[dev,gpu]"])) == 1
    # a changed torch invalidates the project step after it too (keys chain)
    changed = _chain(torch=["torch==2.14.1"])
    assert nf.first_stale_step(done, changed) == 0
    assert changed[1].key != _chain()[1].key
    # an extra step appended later runs alone
    longer = nf.make_steps(
        [("torch", ["torch==2.13.0"], []), ("project", ["-e", ".[dev]"], []), ("x", ["x"], [])]
    )
    assert nf.first_stale_step(done, longer) == 2


def test_fingerprint_change_invalidates():
    a = nf.make_steps([("project", ["-e", "."], ["hash-a"])])
    b = nf.make_steps([("project", ["-e", "."], ["hash-b"])])
    assert a[0].key != b[0].key


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"version": 999, "steps": [{"key": "a"}]}',
        "[1, 2]",
        '{"version": 1, "steps": ["old-style"]}',
    ],
)
def test_bad_stamp_means_reinstall(tmp_path, content):
    (tmp_path / nf.STAMP_NAME).write_text(content)
    assert nf.read_stamp(tmp_path) == []


def _with_extra(value):
    steps = [("torch", ["torch==2.13.0"], []), ("project", ["-e", ".[dev]"], [])]
    if value:
        steps.append((nf.EXTRA_STEP, nf.parse_install_args(value), []))
    return nf.make_steps(steps, tracked=[nf.EXTRA_STEP])


def test_author_package_is_uninstalled_when_dropped_or_changed(tmp_path):
    with_plugin = _with_extra("-e ../my-method")
    assert [s.tracked for s in with_plugin] == [False, False, True]
    nf.write_stamp(tmp_path, _done(with_plugin, added=["My_Method", "extra.dep"]))
    done = nf.read_stamp(tmp_path)
    # unchanged: nothing to run, nothing to remove
    start = nf.first_stale_step(done, with_plugin)
    assert start == 3 and nf.to_uninstall(done, start) == []
    # LISA_BENCH_INSTALL unset: the project steps stay, the author's packages go
    without = _with_extra("")
    start = nf.first_stale_step(done, without)
    assert start == len(without) < len(done)
    assert nf.to_uninstall(done, start) == ["extra-dep", "my-method"]
    # another package: the old one is removed before the new one is installed
    other = _with_extra("-e ../other")
    start = nf.first_stale_step(done, other)
    assert start == 2 and nf.to_uninstall(done, start) == ["extra-dep", "my-method"]
    # a changed project step reruns the author's step too, so its packages are redone
    changed = nf.make_steps(
        [
            ("torch", ["torch==2.13.0"], []),
            ("project", ["-e", ".[dev,gpu]"], []),
            (nf.EXTRA_STEP, ["-e", "../my-method"], []),
        ],
        tracked=[nf.EXTRA_STEP],
    )
    start = nf.first_stale_step(done, changed)
    assert start == 1 and nf.to_uninstall(done, start) == ["extra-dep", "my-method"]


def test_installed_distributions_of_this_python():
    names = nf.installed_distributions(sys.executable)
    assert "pytest" in names and nf.canonical_name("Lisa_Bench") in names


# ------------------------------------------------------------------------- interpreters


def test_resolve_interpreter_default_is_the_running_python():
    found = nf.resolve_interpreter(None)
    assert nf.probe(found).version == sys.version.replace("\n", " ")
    assert nf.resolve_interpreter("") == found


def test_resolve_interpreter_version_and_errors(monkeypatch, tmp_path):
    def which(name):
        return f"/bin/{name}" if name == "python3.12" else None

    monkeypatch.setattr(nf.shutil, "which", which)
    assert nf.resolve_interpreter("3.12") == "/bin/python3.12"
    assert nf.resolve_interpreter("python3.12") == "/bin/python3.12"
    with pytest.raises(nf.SetupError, match="python3.99 is not on PATH"):
        nf.resolve_interpreter("3.99")
    with pytest.raises(nf.SetupError, match="no executable file"):
        nf.resolve_interpreter(str(tmp_path / "missing" / "python"))
    assert nf.resolve_interpreter(sys.executable) == sys.executable


def test_probe_identifies_this_python_and_fails_softly(tmp_path):
    me = nf.probe(sys.executable)
    assert me.short_version == "{}.{}".format(*sys.version_info[:2])
    assert Path(me.base_prefix) == Path(os.path.realpath(sys.base_prefix))
    assert nf.probe(tmp_path / "no-python") is None


def test_rebuild_only_for_another_interpreter(tmp_path):
    a = nf.Interpreter("3.11", "3.11.7 (main, May  9 2026) [GCC 12.2.0]", "/root/.pyenv/3.11.7")
    b = nf.Interpreter("3.11", "3.11.2 (main, Mar 13 2023) [GCC 12.2.0]", "/usr")
    assert nf.rebuild_reason(a, a) is None
    reason = nf.rebuild_reason(b, a)
    assert "3.11.2" in reason and "3.11.7" in reason
    assert nf.rebuild_reason(None, a) == "its python does not run"
    # one environment per X.Y: 3.12 never reuses the 3.11 one
    c = nf.Interpreter("3.12", "3.12.3", "/usr")
    assert nf.env_location("project", a, tmp_path) != nf.env_location("project", c, tmp_path)
    assert nf.env_location("project", a, tmp_path) == nf.env_location("project", b, tmp_path)


def test_parse_probe():
    got = nf.parse_probe("3.11\n3.11.2 (main) [GCC]\n/usr\n")
    assert got == nf.Interpreter("3.11", "3.11.2 (main) [GCC]", "/usr")
    with pytest.raises(nf.SetupError):
        nf.parse_probe("garbage")


# --------------------------------------------------------------------- sessions & CI


def test_nox_lists_every_session():
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for name in (
        "tests",
        "bench",
        "lint",
        "leaderboard",
        "asv",
        "dashboard",
        "memray",
        "regress",
        "gpu",
    ):
        assert f" {name} -> " in out.stdout


def test_ci_script_sets_up_its_own_venv():
    script = ROOT / ".ci" / "run"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "python3 -m venv" in text
    assert ".venv/bin/nox -s lint tests" in text
    assert "chromium" in text
