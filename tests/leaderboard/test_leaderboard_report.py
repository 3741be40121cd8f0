"""Markdown and HTML reports; the HTML page rendered in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest
from leaderboard_rows import document, row

from harness.leaderboard.report import to_markdown, write_outputs

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and os.path.exists(p)), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]


def _doc():
    return document(
        [
            row("sdpa", ndcg=0.3, speedup=1.0),
            row("lisa-base", ndcg=0.35, speedup=0.2),
            row("performer", ndcg=0.25, speedup=2.0),
            row("broken<&>", ndcg=0.9, status="failed"),
        ]
    )


def test_outputs_are_written_and_consistent(tmp_path):
    doc = _doc()
    paths = write_outputs(doc, tmp_path)
    assert json.loads(paths["json"].read_text())["rows"][0]["method"] == "lisa-base"
    md = paths["markdown"].read_text()
    assert md == to_markdown(doc)
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(doc["rows"])  # header + one line per row
    assert "broken&lt;&amp;&gt;" in paths["html"].read_text()  # escaped, not injected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def _render(tmp_path, page):
    profile = tmp_path / "profile"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done, console


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_html_renders_rows_without_console_errors_in_chromium(tmp_path):
    doc = _doc()
    html_path = write_outputs(doc, tmp_path / "out")["html"]
    done, console = _render(tmp_path, html_path)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    # the script ran to its end (it records the number of rows it sorted)
    assert f'data-ready="{len(doc["rows"])}"' in dom
    methods = re.findall(r'<tr class="row" data-method="([^"]+)"', dom)
    assert len(methods) == len(doc["rows"])
    assert set(methods) == {html.escape(r["method"], quote=True) for r in doc["rows"]}
    assert methods[:3] == ["lisa-base", "sdpa", "performer"]  # sorted by rank
    assert dom.count('class="point"') == 3  # three rows have quality and speed
    assert console == [], console


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_console_error_detection_is_not_vacuous(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = _render(tmp_path, page)
    assert any("Uncaught" in line for line in console)
