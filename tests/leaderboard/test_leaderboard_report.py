"""Markdown and HTML reports; the HTML page rendered in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys

import pytest
from leaderboard_rows import document, row, sample_board

from harness.leaderboard.report import (
    Cell,
    method_family,
    reproduce_command,
    table_rows,
    to_html,
    to_markdown,
    write_outputs,
)
from harness.scaling import format_exponent

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and os.path.exists(p)), None
)
NO_CHROMIUM = "Chromium is not installed (Debian package chromium)"
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


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _doc():
    return document(
        [
            row("sdpa", ndcg=0.3, speedup=1.0),
            row("lisa-base", ndcg=0.35, speedup=0.2),
            row("performer", ndcg=0.25, speedup=2.0),
            row("broken<&>", ndcg=0.9, status="failed"),
        ]
    )


@pytest.fixture(scope="module")
def board():
    return sample_board()


@pytest.fixture(scope="module")
def page(board):
    return to_html(board)


def _cells(doc) -> dict[str, dict[str, Cell]]:
    return {r["method"]: c for r, c in zip(doc["rows"], table_rows(doc), strict=True)}


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


# --------------------------------------------------------------------------------------
# The table: ties, intervals, the headline length, exponents


def test_ties_are_shown_and_the_rule_is_stated(board, page):
    cells = _cells(board)
    assert [cells[m]["rank"].text for m in ("local_window", "lsh", "sdpa", "oracle")] == ["=1"] * 4
    assert "tied with local_window" in cells["sdpa"]["rank"].title
    assert cells["performer"]["rank"].text == "11" and cells["performer"]["rank"].title is None
    md = to_markdown(board)
    assert "| =1 | lsh |" in md and "within noise" in md and "95% intervals" in md
    assert '<span class="tie">=1</span>' in page and "within noise" in page


def test_quality_shows_its_interval_or_says_one_seed():
    three = _cells(sample_board())
    assert three["sdpa"]["ndcg10"].text == "0.4781 ± 0.0032"  # 4.3027 * 0.0013 / sqrt(3)
    assert "95% interval of the mean [0.4749, 0.4813]" in three["sdpa"]["ndcg10"].title
    one = sample_board(seeds=(0,))
    cells = _cells(one)
    assert cells["sdpa"]["ndcg10"].text == "0.4781 (1 seed)"
    assert cells["sdpa"]["ndcg10"].title == "one seed: no interval"
    assert cells["sdpa"]["hr10"].text == "0.7650 (1 seed)"
    # one seed: the 4-decimal rule; example_softmax (0.4779) no longer ties
    assert cells["example_softmax"]["rank"].text == "5"
    assert "'(1 seed)': no interval" in to_markdown(one)


def test_headline_columns_name_their_length(board):
    md = to_markdown(board)
    assert "speed-up vs SDPA @ L=8192" in md and "memory / SDPA @ L=8192" in md
    assert "at L = 8192, the longest length every compared method reached" in md
    cells = _cells(board)
    sdpa, lw = cells["sdpa"]["speedup"], cells["local_window"]["speedup"]
    assert sdpa.text == "1× · 47% roofline"  # roofline fraction beside the speed-up
    assert lw.text.startswith("5.11×") and "at L=8192" in lw.title
    # lsh timed out at 16,384: that is why the board compares at 8,192
    oracle = cells["oracle"]["speedup"]
    assert oracle.text == "-" and "longest L measured: 4096" in oracle.title
    assert "reference row" in oracle.title
    # the pipeline's own headline keys give the same table
    given = sample_board(headlines=True)
    assert given["headline_length"] == 8192
    assert to_markdown(given) == md


def test_a_row_off_the_common_length_says_where_it_was_measured():
    doc = document([row("sdpa", ndcg=0.3, speedup=1.0), row("lsh", ndcg=0.2, speedup=2.0)])
    lsh = next(r for r in doc["rows"] if r["method"] == "lsh")
    lsh["speed"]["headline"] = {"length": 64, "time_ratio": 0.5, "memory_ratio": 1.0}
    cells = _cells(doc)
    assert cells["lsh"]["speedup"].text == "2× @ L=64"
    assert cells["sdpa"]["speedup"].text == "1×"  # at the board's L = 128
    assert "speed-up vs SDPA @ L=128" in to_markdown(doc)


def test_exponents_need_four_lengths_spanning_16x(board):
    three = row("sdpa", ndcg=0.3, speedup=1.0)
    three["speed"].update(
        lengths=[256, 512, 1024],
        time_s=[1.0, 2.0, 3.0],
        memory_bytes=[1, 2, 3],
        time_ratio=[1.0, 1.0, 1.0],
        memory_ratio=[1.0, 1.0, 1.0],
        time_exponent=[0.63, -0.62, 1.88],
    )
    cell = _cells(document([three]))["sdpa"]["time_exp"]
    assert cell == Cell("-", None, cell.title)
    assert "3 sizes spanning 4x" in cell.title and "needs >= 4" in cell.title
    assert "0.63" not in to_markdown(document([three]))
    assert format_exponent([0.63, -0.62, 1.88], sizes=[256, 512, 1024]) == "-"
    assert format_exponent([0.63, -0.62, 1.88]) == "0.63 [-0.62, 1.88]"  # no sizes: as before
    assert format_exponent([1.0, 0.9, 1.1], sizes=[1, 2, 4, 16]) == "1.00 [0.90, 1.10]"
    # the quick grid (7 lengths, 64x) is reported, with its interval
    assert re.fullmatch(r"1\.9\d \[1\.\d\d, 2\.\d\d\]", _cells(board)["sdpa"]["time_exp"].text)


def test_families():
    assert {m: method_family(m) for m in ("sdpa", "oracle", "xformers_mea")} == dict.fromkeys(
        ("sdpa", "oracle", "xformers_mea"), "exact"
    )
    assert method_family("performer") == method_family("linear") == "linear kernel"
    assert method_family("fla_linear") == method_family("fla_decay_linear") == "linear kernel"
    assert method_family("decay_linear") == "linear kernel"
    assert method_family("lsh") == method_family("local_window") == "sparse / local"
    assert method_family("linformer") == "low rank"
    assert method_family("lisa-mini") == method_family("lisa_kmeans") == "LISA"
    assert method_family("my_plugin") == "other"


# --------------------------------------------------------------------------------------
# Charts


@pytest.mark.skipif(not _has_matplotlib(), reason="matplotlib is not installed")
def test_charts_are_inline_svg_with_families_references_and_front(board, page):
    pareto = re.search(r'<figure class="chart" id="chart-pareto">(.*?)</figure>', page, re.S)
    scaling = re.search(r'<figure class="chart" id="chart-scaling">(.*?)</figure>', page, re.S)
    assert pareto and scaling and "<svg" in pareto.group(1) and "<svg" in scaling.group(1)
    plotted = [r for r in board["rows"] if r["speedup"] and (r["downstream"] or {}).get("NDCG@10")]
    assert len(re.findall(r'id="pareto-point-', pareto.group(1))) == len(plotted) == 11
    assert "Not plotted (no speed-up or no quality): oracle, broken_peek_ahead" in pareto.group(1)
    for family in ("exact", "linear kernel", "sparse / local", "low rank", "LISA", "other"):
        assert f">{html.escape(family)}<" in pareto.group(1)
    assert "Pareto front" in pareto.group(1)
    for text in ("SDPA (reference)", "oracle (reference)", "lisa-base (layer)", "16,384"):
        assert text in scaling.group(1)
    # real tick labels on both axes, in units
    assert all(t in scaling.group(1) for t in (">256<", ">1 ms<", ">100 ms<", ">1 GB<"))
    assert all(t in pareto.group(1) for t in (">1×<", ">2×<", ">5×<", ">0.440<"))
    # offline: nothing is fetched, and ids are unique on the page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_page_without_matplotlib_says_so_and_still_renders(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    doc = sample_board(seeds=(0,))
    text = write_outputs(doc, tmp_path)["html"].read_text()
    assert 'id="charts-missing"' in text and "lisa-bench[report]" in text
    assert "<svg" not in text
    assert text.count('<tr class="row') == len(doc["rows"])
    assert text.count('<section class="detail"') == len(doc["rows"])


# --------------------------------------------------------------------------------------
# Per-method details


def test_every_row_links_to_its_details(board, page):
    links = re.findall(r'<a href="#(detail-\d+)">([^<]+)</a>', page)
    assert [m for _, m in links] == [html.escape(r["method"]) for r in board["rows"]]
    for anchor, method in links:
        section = re.search(rf'<section class="detail" id="{anchor}">(.*?)</section>', page, re.S)
        assert section, anchor
        body = section.group(1)
        assert html.escape(method) in body and "AMD EPYC 7B13" in body  # the fingerprint
        assert "python -m harness leaderboard --methods" in body
    lsh = re.search(r'id="detail-2">(.*?)</section>', page, re.S).group(1)
    assert ">timeout<" in lsh and ">16,384<" in lsh  # per-length status from the runner
    assert ">validation<" in lsh and ">downstream<" in lsh  # row["stages"]
    assert ">0.31<" in lsh and ">0.496<" in lsh  # error against L (gaussian at 256, 1024)
    broken = page[page.index("broken_peek_ahead <small>") :]
    assert "invalid: causal leak" in broken and "test_causal_mask[64]" in broken


def test_the_reproduce_command_rebuilds_the_configuration(board):
    """Parsed by the real command line, the command gives back the row's configuration."""
    import argparse
    from dataclasses import asdict

    from harness.commands import leaderboard as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="cmd"))
    for r in board["rows"]:
        text, notes = reproduce_command(board, r)
        argv = shlex.split(text)
        assert argv[:5] == ["python", "-m", "harness", "leaderboard", "--methods"]
        args = parser.parse_args(argv[3:])
        assert args.methods == [r["method"]]
        config = board["configs"][r["config_hash"]]
        rebuilt = asdict(command._config(args))
        for key, value in config.items():
            if key in ("methods", "plugins", "stage_timeout_s"):
                continue
            assert json.dumps(rebuilt[key]) == json.dumps(value), (key, rebuilt[key], value)
        assert args.timeout == config["stage_timeout_s"]
        assert args.plugin == ([r["source"]] if r["source"] in config["plugins"] else [])
        assert notes == []
    # a setting without an option is named, not silently dropped
    doc = json.loads(json.dumps(board))
    next(iter(doc["configs"].values()))["budget_s"] = 1.5
    _, notes = reproduce_command(doc, doc["rows"][0])
    assert any("budget_s=1.5" in n for n in notes)
    _, notes = reproduce_command({**doc, "configs": {}}, doc["rows"][0])
    assert "not in this document" in notes[0]
    # a full-board row with both optional columns left out says so with their flags
    from harness.leaderboard.pipeline import LeaderboardConfig

    full = {**asdict(LeaderboardConfig.full()), "long_history_len": None, "mqar_lengths": []}
    text, notes = reproduce_command(
        {"configs": {"h": full}}, {"method": "linear", "config_hash": "h"}
    )
    assert "--no-long-history" in text and "--no-mqar" in text and notes == []
    rebuilt = asdict(command._config(parser.parse_args(shlex.split(text)[3:])))
    assert rebuilt["long_history_len"] is None and rebuilt["mqar_lengths"] == ()
    # MQAR seeds of their own travel as their option; the empty default adds nothing
    seeded = {**asdict(LeaderboardConfig.full()), "mqar_seeds": [0, 1, 2]}
    text, notes = reproduce_command(
        {"configs": {"h": seeded}}, {"method": "linear", "config_hash": "h"}
    )
    assert "--mqar-seeds 0 1 2" in text and notes == []
    assert asdict(command._config(parser.parse_args(shlex.split(text)[3:])))["mqar_seeds"] == (
        0,
        1,
        2,
    )
    assert rebuilt["long_history_epochs"] == 25 and rebuilt["quick"] is False


# --------------------------------------------------------------------------------------
# Headless Chromium


def _render(tmp_path, url, *extra):
    profile = tmp_path / "profile"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done, console


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_html_renders_rows_without_console_errors_in_chromium(tmp_path):
    doc = _doc()
    html_path = write_outputs(doc, tmp_path / "out")["html"]
    done, console = _render(tmp_path, html_path.as_uri(), "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    # the script ran to its end (it records the number of rows it sorted)
    assert f'data-ready="{len(doc["rows"])}"' in dom
    methods = re.findall(r'<tr class="row[^"]*" data-method="([^"]+)"', dom)
    assert len(methods) == len(doc["rows"])
    assert set(methods) == {html.escape(r["method"], quote=True) for r in doc["rows"]}
    assert methods[:3] == ["lisa-base", "sdpa", "performer"]  # sorted by rank
    if _has_matplotlib():
        assert dom.count('id="pareto-point-') == 3  # three rows have quality and speed
    assert console == [], console


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_sort_key_is_shown_and_can_be_chosen(tmp_path, board):
    path = write_outputs(board, tmp_path / "out")["html"]
    done, console = _render(tmp_path, path.as_uri(), "--dump-dom")
    assert 'data-sort-key="rank"' in done.stdout and 'aria-sort="ascending"' in done.stdout
    assert re.search(r'id="sort-key">#[^<]*NDCG@10', done.stdout)
    # #sort=<column> (as a click leaves it in the address): best first for that column
    done, console = _render(tmp_path, path.as_uri() + "#sort=speedup", "--dump-dom")
    dom = done.stdout
    assert 'data-sort-key="speedup"' in dom and 'data-sort-dir="desc"' in dom
    assert re.search(r'id="sort-key">speed-up vs SDPA @ L=8192<', dom)
    assert re.search(r'id="sort-dir">descending, best first<', dom)
    order = re.findall(r'<tr class="row[^"]*" data-method="([^"]+)"', dom)
    by_speed = sorted((r for r in board["rows"] if r["speedup"]), key=lambda r: -r["speedup"])
    assert order[: len(by_speed)] == [r["method"] for r in by_speed]
    done, _ = _render(tmp_path, path.as_uri() + "#sort=ndcg10:asc", "--dump-dom")
    order = re.findall(r'<tr class="row[^"]*" data-method="([^"]+)"', done.stdout)
    assert order[0] == "linear" and 'id="sort-dir">ascending, worst first<' in done.stdout
    done, _ = _render(tmp_path, path.as_uri() + "#sort=method", "--dump-dom")  # text
    order = re.findall(r'<tr class="row[^"]*" data-method="([^"]+)"', done.stdout)
    assert order == sorted(r["method"] for r in board["rows"])
    assert console == [], console


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_screenshot_of_the_page_is_real_and_the_console_is_clean(tmp_path, board):
    path = write_outputs(board, tmp_path / "out")["html"]
    shot = tmp_path / "shot.png"
    done, console = _render(
        tmp_path,
        path.as_uri(),
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        "--hide-scrollbars",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert _png_size(data) == (1280, 2400)
    assert len(data) > 60_000, len(data)  # text, a table and two charts, not a blank page
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        image = Image.open(shot).convert("RGB")
        ink = sum(image.convert("L").histogram()[:200])  # pixels darker than light grey
        assert ink > 0.02 * 1280 * 2400, ink
        assert len(image.getcolors(1 << 20)) > 200  # family colours, anti-aliased text
    assert console == [], console  # no "Uncaught ..." nor any other console message


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_console_error_detection_is_not_vacuous(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = _render(tmp_path, page.as_uri(), "--dump-dom")
    assert any("Uncaught" in line for line in console)


def test_model_free_baselines_are_stated_under_the_table(board):
    from harness.leaderboard.store import validate_document

    doc = json.loads(json.dumps(board))  # as written to disk (tuples become lists)
    doc["downstream_baselines"] = {
        "split": "test",
        "repeat_share": 0.46,
        "repeat_threshold": 0.2,
        "metrics": {
            "popularity": {"HR@5": 0.3, "NDCG@5": 0.2, "HR@10": 0.4321, "NDCG@10": 0.25},
            "random": {"HR@5": 0.05, "NDCG@5": 0.03, "HR@10": 0.099, "NDCG@10": 0.045},
        },
    }
    validate_document(doc)
    md = to_markdown(doc)
    assert "Model-free baselines" in md and "popularity HR@10 0.4321" in md
    assert "46% of the test targets occur in the user's own history" in md
    page = to_html(doc)
    assert 'id="baselines"' in page and "random HR@10 0.0990" in page
    without = to_markdown(board)
    assert "Model-free baselines" not in without
    bad = {**doc, "downstream_baselines": {"metrics": {"popularity": {"HR@10": "high"}}}}
    with pytest.raises(ValueError):
        validate_document(bad)
