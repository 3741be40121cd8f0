"""One table from many ``seqrec --output`` files: each method's mean and 95% interval over
its seeds, and its paired difference from a reference method (exact attention).

A campaign runs one process per (method, seed), so that runs can share cores, be
restarted or time out alone; this module puts the pieces back together:

* :func:`load_runs` reads the files (each holds ``runs``, one record per seed, plus the
  model-free ``baselines`` on the same test targets);
* :func:`summarise` groups the records by method (a LISA layer outside the authors'
  configuration is labelled with the flags that differ), checks that every record was
  trained under the same protocol (data checksum, D, window, epochs, patience, batch,
  learning rate, dropout, negatives), and computes, per metric, the mean with its
  Student-t interval (:func:`harness.seqrec.statistics.mean_interval`) and, per method,
  the paired difference from the reference on the seeds both share
  (:func:`harness.seqrec.statistics.paired_difference`): *better* / *worse* when its
  interval excludes 0, *within noise* when it contains 0, no verdict with one shared seed;
* :func:`format_markdown` writes the table, best NDCG@10 first, with the baselines below.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.seqrec.statistics import mean_interval, paired_difference

__all__ = ["METRICS", "load_runs", "summarise", "format_markdown"]

METRICS = ("HR@10", "NDCG@10", "HR@5", "NDCG@5")
# Settings every record of one table must share (TrainConfig fields); the seed may differ.
PROTOCOL = ("d_model", "max_len", "epochs", "patience", "batch_size", "lr", "dropout", "betas")
# ... and how the test targets were ranked (the file's "protocol")
EVALUATION = ("num_negatives", "negatives_from", "negatives_seed")


def load_runs(paths: Iterable[str | Path]) -> tuple[list[dict], dict]:
    """(records, baselines): every run record of every file, each with ``"file"`` added,
    and the baselines of the first file that has them. ValueError naming the file for one
    that is not a ``seqrec --output`` document, or whose baselines differ from the
    first's (different test targets or negatives)."""
    records: list[dict] = []
    baselines: dict = {}
    first = None
    for path in paths:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not readable as JSON ({exc})") from None
        runs = doc.get("runs") if isinstance(doc, dict) else None
        if not isinstance(runs, list) or not runs:
            raise ValueError(f"{path}: expected a `seqrec --output` file with a 'runs' list")
        source = (doc.get("provenance") or {}).get("source") or {}
        negatives = {k: (doc.get("protocol") or {}).get(k) for k in EVALUATION}
        for run in runs:
            records.append(
                {**run, "file": str(path), "commit": source.get("commit"), "negatives": negatives}
            )
        found = doc.get("baselines") or {}
        if found and not baselines:
            baselines, first = found, path
        elif found and found != baselines:
            raise ValueError(
                f"{path}: its baselines differ from {first}'s: the runs were not evaluated "
                "on the same test targets and negatives"
            )
    if not records:
        raise ValueError("no files given")
    return records, baselines


def _label(record: dict) -> str:
    """The method, with the LISA flags that differ from the authors' configuration."""
    method = record["method"]
    flags = record.get("lisa_config")
    if not flags:
        return method
    from impls.attention.lisa_layers import AUTHORS

    differ = [f"{k}={v}" for k, v in sorted(flags.items()) if getattr(AUTHORS, k, v) != v]
    return f"{method} [{', '.join(differ)}]" if differ else method


def _protocol(record: dict) -> dict:
    config = record.get("config") or {}
    out = {key: config.get(key) for key in PROTOCOL}
    out["dataset"] = record.get("dataset")
    out["data_checksum"] = record.get("data_checksum")
    out["negatives"] = record.get("negatives")
    return out


def summarise(records: Sequence[dict], reference: str = "sdpa") -> dict:
    """``{"protocol", "reference", "rows"}``; each row: ``label``, ``seeds``, per metric
    ``{metric: Interval.as_dict()}``, ``epoch_time_s`` (median over seeds of each run's
    median epoch), ``step_peak_mib`` (largest), ``best_epochs``, and ``paired`` (per
    metric, the difference from ``reference`` with its verdict; None for the reference
    itself or without shared seeds). Records whose status is not ``ok`` are listed in
    the row's ``failed`` (file and status) and left out of the statistics. ValueError
    when two records differ in a protocol setting, or one method has a seed twice."""
    if not records:
        raise ValueError("no run records")
    protocol = _protocol(records[0])
    for record in records[1:]:
        other = _protocol(record)
        diff = [k for k in protocol if protocol[k] != other[k]]
        if diff:
            pairs = ", ".join(f"{k}: {protocol[k]!r} vs {other[k]!r}" for k in diff)
            raise ValueError(
                f"{record['file']}: not the protocol of {records[0]['file']} ({pairs}); "
                "one table compares runs of one protocol"
            )
    groups: dict[str, dict[int, dict]] = {}
    failed: dict[str, list[str]] = {}
    for record in records:
        label = _label(record)
        seed = (record.get("config") or {}).get("seed")
        if record.get("status", "ok") != "ok":
            failed.setdefault(label, []).append(f"{record['file']}: {record.get('status')}")
            continue
        seeds = groups.setdefault(label, {})
        if seed in seeds:
            raise ValueError(f"{record['file']}: {label} seed {seed} also in {seeds[seed]['file']}")
        seeds[seed] = record
    rows = []
    ref = groups.get(reference, {})
    for label in sorted(set(groups) | set(failed)):
        by_seed = groups.get(label, {})
        row: dict = {"label": label, "seeds": sorted(by_seed), "failed": failed.get(label, [])}
        if by_seed:
            runs = [by_seed[s] for s in row["seeds"]]
            for metric in METRICS:
                row[metric] = mean_interval([r["test"][metric] for r in runs]).as_dict()
            row["epoch_time_s"] = statistics.median(r["epoch_time_s"] for r in runs)
            peaks = [r["train_step_peak_bytes"] for r in runs if r.get("train_step_peak_bytes")]
            row["step_peak_mib"] = max(peaks) / 2**20 if peaks else None
            row["best_epochs"] = [f"{r['best_epoch']}/{r['epochs_run']}" for r in runs]
            row["paired"] = None
            shared = [s for s in by_seed if s in ref]
            if label != reference and shared:
                row["paired"] = {}
                for metric in METRICS:
                    mine = {s: by_seed[s]["test"][metric] for s in shared}
                    theirs = {s: ref[s]["test"][metric] for s in shared}
                    row["paired"][metric] = paired_difference(mine, theirs).as_dict()
        rows.append(row)
    rows.sort(key=lambda r: -(r["NDCG@10"]["mean"] if "NDCG@10" in r else -1.0))
    commits = sorted({str(r.get("commit"))[:12] for r in records if r.get("commit")})
    return {"protocol": protocol, "reference": reference, "rows": rows, "commits": commits}


def _interval(cell: dict) -> str:
    if cell["half_width"] is None:
        return f"{cell['mean']:.4f}"
    return f"{cell['mean']:.4f} ± {cell['half_width']:.4f}"


def _verdict(paired: dict) -> str:
    diff = paired["difference"]
    text = f"{diff['mean']:+.4f}"
    if diff["half_width"] is None:
        return f"{text} (1 shared seed)"
    text += f" ± {diff['half_width']:.4f}"
    if paired["within_noise"]:
        return f"{text}, within noise"
    return f"{text}, {'better' if diff['mean'] > 0 else 'worse'}"


def format_markdown(summary: dict, baselines: dict | None = None) -> str:
    """The summary as a Markdown table: metrics as mean ± half-width of the 95% interval
    over the seeds, the paired difference from the reference in NDCG@10 and HR@10, then
    the model-free baselines (same test targets and negatives) and the protocol."""
    ref = summary["reference"]
    head = (
        "| method | seeds | HR@10 | NDCG@10 | HR@5 | NDCG@5 | NDCG@10 - "
        f"{ref} (paired) | HR@10 - {ref} (paired) | best epoch / run | epoch time (s) | "
        "step peak heap (MiB) |"
    )
    lines = [head, "|" + "---|" * 11]
    for row in summary["rows"]:
        if not row["seeds"]:
            lines.append(
                f"| {row['label']} | - | " + " | ".join(["-"] * 8) + " | "
                + "; ".join(row["failed"]) + " |"
            )  # fmt: skip
            continue
        paired = row.get("paired")
        cells = [
            row["label"],
            ",".join(str(s) for s in row["seeds"]),
            *(_interval(row[m]) for m in METRICS),
            _verdict(paired["NDCG@10"]) if paired else "-",
            _verdict(paired["HR@10"]) if paired else "-",
            "; ".join(row["best_epochs"]),
            f"{row['epoch_time_s']:.1f}",
            "-" if row["step_peak_mib"] is None else f"{row['step_peak_mib']:.0f}",
        ]
        if row["failed"]:
            cells[-1] += " (not counted: " + "; ".join(row["failed"]) + ")"
        lines.append("| " + " | ".join(cells) + " |")
    for name, metrics in sorted((baselines or {}).items()):
        values = " | ".join(f"{metrics[m]:.4f}" for m in METRICS)
        lines.append(f"| {name} (model-free) | - | {values} | - | - | - | - | - |")
    p = summary["protocol"]
    lines += [
        "",
        f"{p['dataset']} (data SHA-256 {str(p['data_checksum'])[:12]}...), D = {p['d_model']}, "
        f"window {p['max_len']}, at most {p['epochs']} epochs (patience {p['patience']}), "
        f"batch {p['batch_size']}, lr {p['lr']}, dropout {p['dropout']}. Intervals: 95% "
        "Student-t over the seeds; paired: the mean per-seed difference from "
        f"{ref} on the seeds both ran, 'within noise' when its interval contains 0.",
    ]
    if summary.get("commits"):
        lines[-1] += f" Code: {', '.join(summary['commits'])}."
    return "\n".join(lines) + "\n"
