"""The regression gate against misbehaving cases and hostile input, on throw-away git
repositories with a tiny workload (no torch): a case that aborts, exits, hangs, prints or
allocates too much becomes that case's error while the other cases are still judged; a
dirty working tree, an option-like revision and bad options are refused before any timing;
commits are extracted safely on Pythons whose tarfile lacks the "data" filter."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from harness.cli import main
from harness.regress import paired_timing as regress_runner

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# "printer" writes to stdout both ways (as the import may), to show the protocol survives.
WORKLOAD = """
import os
import sys
import time

if os.environ.get("FAKE_WORKLOAD_PRINTS"):
    print("importing the fake workload")
VERSION = {version}
GATE_CASES = ("ok", "also_ok")
KNOWN = ("ok", "also_ok", "abort", "exit3", "hang", "printer", "hog", "dirty")


def check_case(case_id):
    if case_id not in KNOWN:
        raise KeyError(case_id)


def spin(seconds=0.002):
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        pass


def build_case(case_id):
    check_case(case_id)

    def run():
        if case_id == "abort":
            os.abort()
        elif case_id == "exit3":
            os._exit(3)
        elif case_id == "hang":
            time.sleep(3600)
        elif case_id == "printer":
            print("a stray print", flush=True)
            sys.stdout.write("{{not json\\n")
            os.write(1, b"raw bytes on fd 1\\n")
        elif case_id == "hog":
            return bytearray(768 * 2**20)
        elif case_id == "dirty" and STATE != "committed":
            raise RuntimeError("this is the " + STATE + " tree")
        spin()

    return run


STATE = "committed"
"""


def git(repo, *args) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode()


def make_repo(path):
    """A repository with two commits of the fake workload (identical cases)."""
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "gate@example.invalid")
    git(path, "config", "user.name", "gate test")
    for version in (1, 2):
        (path / "fake_workload.py").write_text(WORKLOAD.format(version=version))
        git(path, "add", "fake_workload.py")
        git(path, "commit", "-q", "-m", f"v{version}")
    return path


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("gate") / "repo")


def gate(repo, output, *args, base="HEAD~1", head="HEAD", deadline=90.0) -> int:
    """Run ``python -m harness regress`` in a thread (so a hang fails instead of blocking
    the suite); the exit code."""
    argv = ["regress", "--repo", str(repo), "--workload", "fake_workload"]
    argv += ["--rounds", "7", "--output", str(output), *args, "--", base, head]
    outcome = {}

    def target():
        try:
            outcome["code"] = main(argv)
        except BaseException as error:  # surfaced below
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"the gate was still running after {deadline} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["code"]


def judged(result: dict) -> bool:
    return "error" not in result and result["ratio"] > 0 and len(result["base"]) == 7


@pytest.mark.parametrize(
    ("bad", "kind", "message"),
    [
        ("abort", "crash", "killed by signal SIGABRT"),
        ("exit3", "crash", "exited with code 3"),
        ("hang", "timeout", "timed out after 2 s"),
    ],
)
def test_a_crashing_or_hanging_case_is_that_cases_error(repo, tmp_path, bad, kind, message):
    out = tmp_path / "r.json"
    started = time.monotonic()
    limit = ["--case-timeout", "2"] if bad == "hang" else []  # crashes need no timeout
    code = gate(repo, out, "--cases", "ok", bad, "also_ok", *limit)
    elapsed = time.monotonic() - started
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == sorted(["ok", bad, "also_ok"])
    # the case after the bad one runs on a restarted worker and is judged
    assert judged(results["ok"]) and judged(results["also_ok"]), results
    error = results[bad]
    assert error["error_kind"] == kind and message in error["error"], error
    assert error["side"] in ("base", "head") and error["side"] in error["error"]
    assert f"case {bad!r}" in error["error"]
    assert code == 2  # not comparable, never 1 ("regression") and never a traceback
    assert elapsed < 60


def test_a_case_that_prints_to_stdout_disturbs_nothing(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_WORKLOAD_PRINTS", "1")  # and the workload prints on import
    out = tmp_path / "r.json"
    code = gate(repo, out, "--cases", "ok", "printer", "also_ok")
    results = json.loads(out.read_text())["results"]
    assert all(judged(r) for r in results.values()), results
    assert sorted(results) == ["also_ok", "ok", "printer"]
    assert code in (0, 1)  # identical code; 1 only on a (rare) false alarm


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_the_memory_cap_turns_an_oversized_case_into_its_error(repo, tmp_path):
    out = tmp_path / "r.json"
    code = gate(repo, out, "--cases", "hog", "ok", "--memory-cap-gb", "0.5")
    report = json.loads(out.read_text())
    assert report["memory_cap_bytes"] == 2**29
    assert report["results"]["hog"]["error_kind"] == "error"
    assert "MemoryError" in report["results"]["hog"]["error"]
    assert judged(report["results"]["ok"])
    assert code == 2


def test_default_cases_come_from_the_head_workload(repo, tmp_path):
    out = tmp_path / "r.json"
    code = gate(repo, out)
    assert sorted(json.loads(out.read_text())["results"]) == ["also_ok", "ok"]
    assert code in (0, 1)


def test_a_dirty_tree_is_refused_unless_allowed_and_worktree_times_it(tmp_path, capsys):
    repo = make_repo(tmp_path / "dirty")
    source = repo / "fake_workload.py"
    committed = source.read_text()
    source.write_text(committed.replace('STATE = "committed"', 'STATE = "staged"'))
    git(repo, "add", "fake_workload.py")  # a staged change alone makes the tree dirty
    out = tmp_path / "r.json"
    capsys.readouterr()
    assert gate(repo, out, "--cases", "dirty", base="HEAD", head="HEAD") == 2
    err = capsys.readouterr().err
    assert "uncommitted changes" in err and "--allow-dirty" in err
    assert not out.exists()  # refused before anything was timed or written

    # then an unstaged edit on top: the case fails only on it, so an error from the head
    # side naming it shows WORKTREE runs the working tree's content (not the index's)
    source.write_text(committed.replace('STATE = "committed"', 'STATE = "edited"'))
    assert gate(repo, out, "--cases", "dirty", "--allow-dirty", base="HEAD", head="WORKTREE") == 2
    result = json.loads(out.read_text())["results"]["dirty"]
    assert result["side"] == "head" and "this is the edited tree" in result["error"], result
    assert gate(repo, out, "--cases", "dirty", "--allow-dirty", base="HEAD", head="HEAD") in (0, 1)
    assert judged(json.loads(out.read_text())["results"]["dirty"])


@pytest.mark.parametrize("position", ["base", "head"])
def test_an_option_like_revision_is_refused_and_touches_nothing(repo, tmp_path, capsys, position):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    revisions = {"base": "HEAD", "head": "HEAD", position: f"--output={victim}"}
    out = tmp_path / "r.json"
    code = gate(repo, out, "--cases", "ok", base=revisions["base"], head=revisions["head"])
    assert code == 2
    assert f"--output={victim}" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    assert not out.exists()


@pytest.mark.parametrize("rev", ["no-such-rev", "HEAD^{tree}", "HEAD~5"])
def test_a_revision_that_names_no_commit_is_refused_by_name(repo, tmp_path, capsys, rev):
    assert gate(repo, tmp_path / "r.json", "--cases", "ok", base=rev) == 2
    assert repr(rev) in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag",
    [
        ["--rounds", "5"],
        ["--alpha", "0"],
        ["--alpha", "1"],
        ["--alpha", "nan"],
        ["--min-floor", "-0.1"],
        ["--workers-per-side", "0"],
        ["--threads", "-1"],
        ["--case-timeout", "0"],
        ["--memory-cap-gb", "-1"],
    ],
)
def test_bad_options_are_refused_before_any_worker_starts(
    repo, tmp_path, capsys, monkeypatch, flag
):
    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started despite a bad option")

    monkeypatch.setattr(regress_runner, "Worker", no_worker)
    assert gate(repo, tmp_path / "r.json", "--cases", "ok", *flag) == 2
    err = capsys.readouterr().err.strip()
    assert flag[0] in err and len(err.splitlines()) == 1, err


def test_an_unknown_case_id_is_refused_before_timing(repo, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert gate(repo, out, "--cases", "ok", "nope") == 2
    err = capsys.readouterr().err
    assert "--cases" in err and "'nope'" in err
    assert not out.exists()


def tar_with(*members) -> tarfile.TarFile:
    """An in-memory tar of (TarInfo, bytes or None) pairs, opened for reading."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


def entry(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


HOSTILE = {
    "dotdot": [(entry("../evil"), b"x")],
    "absolute": [(entry("{outside}/evil"), b"x")],  # the data filter strips the /
    "symlink out": [(entry("ln", tarfile.SYMTYPE, "../../evil"), None)],
    "absolute symlink": [(entry("ln", tarfile.SYMTYPE, "/etc"), None)],
    # each link looks inside when it is made; together they lead two levels up
    "through links": [
        (entry("L", tarfile.SYMTYPE, "a/p/../.."), None),
        (entry("a", tarfile.DIRTYPE), None),
        (entry("a/p", tarfile.SYMTYPE, ".."), None),
        (entry("L/evil"), b"x"),
    ],
    "hard link out": [(entry("hl", tarfile.LNKTYPE, "../evil"), None)],
    "device": [(entry("dev", tarfile.CHRTYPE), None)],
}


@pytest.mark.parametrize("with_filter", [True, False], ids=["data filter", "fallback"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_archives_are_refused(tmp_path, monkeypatch, with_filter, name):
    if not with_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no data filter")
    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    members = [
        (entry(i.name.format(outside=tmp_path), i.type, i.linkname), d) for i, d in HOSTILE[name]
    ]
    with tar_with(*members) as tar:
        if name == "absolute" and with_filter:
            regress_runner.extract_archive(tar, dest)  # made relative: lands inside
            assert (dest / str(tmp_path).lstrip("/") / "evil").exists()
        else:
            with pytest.raises(regress_runner.GateError):
                regress_runner.extract_archive(tar, dest)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "a" / "evil").exists()


def test_the_fallback_extracts_a_commit_like_the_data_filter(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(repo / "pkg" / "tool.sh", 0o755)
    (repo / "pkg" / "alias.py").symlink_to("../fake_workload.py")
    git(repo, "add", "pkg")
    git(repo, "commit", "-q", "-m", "files")

    def listing(root):
        return {
            str(p.relative_to(root)): (p.is_symlink(), os.access(p, os.X_OK), p.read_bytes())
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    monkeypatch.setattr(tarfile.TarFile, "extractall", None)  # the fallback must not use it
    fallback = regress_runner.export_commit(repo, "HEAD", tmp_path / "fallback")
    monkeypatch.undo()
    expected = {
        "fake_workload.py": (False, False, (repo / "fake_workload.py").read_bytes()),
        "pkg/alias.py": (True, False, (repo / "fake_workload.py").read_bytes()),
        "pkg/tool.sh": (False, True, b"#!/bin/sh\necho hi\n"),
    }
    assert listing(fallback) == expected
    if hasattr(tarfile, "data_filter"):
        assert (
            listing(regress_runner.export_commit(repo, "HEAD", tmp_path / "filtered")) == expected
        )
