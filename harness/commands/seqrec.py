"""``python -m harness seqrec``: train the SASRec-style model with one attention method and
print HR@5/10, NDCG@5/10 (validation and test), time per epoch and peak memory.

Methods: ``lisa-base``, ``lisa-soft``, ``lisa-mini`` (LISA layers), ``exact`` (= ``sdpa``)
or any registry method / ``module:attr`` (through a one-head q/k/v adapter, causal), and
``none``: the no-attention ablation, the floor any attention layer should beat.
Data: ``--dataset synthetic`` (seeded, the default), ``ml-100k`` or ``ml-1m`` (fetch them
first with ``python -m harness fetch-data``) or a name an installed package registers in the
``lisa_bench.datasets`` entry-point group; or your own interactions (see "Bring your own
data" in docs/data.md): ``--inter FILE`` (CSV, TSV such as recbole's ``.inter``, or Parquet;
one event per row; columns ``user_id``, ``item_id``, ``timestamp`` unless ``--columns``
names others) or ``--dataset-card CARD.json`` (the file, its format and columns in JSON).
Beside the method's test metrics it prints model-free baselines on the same targets and
sampled negatives (``harness.seqrec.baselines``): ranking by training popularity and seeded
random scores, plus "seen before, then popularity" on repeat-consumption data; the
no-attention ablation is the model ``--method none``. Protocol check: when more than 5%
of the test targets occur in the user's own history it warns that the protocol's
negatives (never an item the user touched) let a seen-before heuristic win, and
``--negatives-from all`` draws negatives from every item but the target instead. With
several ``--seeds`` it prints each metric's mean and 95% Student-t interval over seeds.
LISA layers follow the authors' published code by default (``--lisa-config authors``);
``--lisa-config project`` gives the project's variant, and ``--lisa-set FLAG=VALUE``
changes one flag of either (see "The authors' configuration and the project's
deviations" in docs/downstream-ml-1m.md); the record's ``lisa_config`` lists the flags.
A run whose training loss becomes NaN or inf stops, prints ``diverged: non-finite loss at
epoch E step S`` and exits with status 1 (no score is printed for it). Training runs in an
isolated worker (``--timeout`` per seed, ``--memory-cap-gb``): a method that crashes, hangs
or exhausts memory gives a record with that status and exit status 1, never a score.
Examples:

    python -m harness seqrec --method lisa-base --dataset ml-1m   # D = 128, max length 200
    python -m harness seqrec --method performer --seeds 0 1 2    # synthetic, three seeds
    python -m harness seqrec --inter plays.csv --columns user=uid,item=song,time=ts
    python -m harness seqrec --inter baskets.csv --negatives-from all   # repeat purchases
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from harness.runner.cli import add_isolation_arguments, limits_from_args

__all__ = ["register", "run"]


def _fmt_bytes(n) -> str:
    return "n/a (memray missing)" if n is None else f"{n / 2**20:.1f} MiB"


METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10")


def _fmt_metrics(m: dict) -> str:
    return "  ".join(f"{key} {m[key]:.4f}" for key in METRICS)


def _protocol_check(task, args: argparse.Namespace) -> tuple[dict, dict]:
    """(protocol record, baselines) for the test split (the warning is printed later, by
    :func:`run`, so that an early error stays the only line on stderr)."""
    from harness.seqrec.baselines import (
        REPEAT_THRESHOLD,
        baseline_metrics,
        repeat_share,
        repeat_warning,
    )

    share = repeat_share(task, "test")
    warning = repeat_warning(share, args.negatives_from)
    protocol = {
        "negatives_from": args.negatives_from,
        "num_negatives": int(task.test.negatives.shape[1]),
        "negatives_seed": 0,
        "repeat_share": share,
        "repeat_threshold": REPEAT_THRESHOLD,
        "warning": warning,
    }
    return protocol, baseline_metrics(task, "test", seed=0)


def _print_baselines(baselines: dict, protocol: dict, method: str, mean_hr10: float) -> None:
    print(
        f"baselines (test split, the same targets and {protocol['num_negatives']} negatives "
        f"each, {protocol['negatives_from']}; repeat share {protocol['repeat_share']:.1%})"
    )
    width = max(len(name) for name in baselines)
    for name, m in baselines.items():
        print(f"  {name:<{width}}  {_fmt_metrics(m)}")
    if method != "none":
        print("  (no attention: the model `--method none`, same flags)")
    best_name, best = max(baselines.items(), key=lambda kv: kv[1]["HR@10"])
    if mean_hr10 <= best["HR@10"]:
        print(
            f"note: {method}'s test HR@10 {mean_hr10:.4f} does not beat the "
            f"{best_name} baseline ({best['HR@10']:.4f})"
        )


BUILTIN_DATASETS = ("synthetic", "ml-100k", "ml-1m")
# = harness.seqrec.training.NEGATIVES_FROM (not imported here: it pulls in torch)
NEGATIVES_FROM = ("history-excluded", "all")
# = impls.attention.lisa_layers.LISA_CONFIGS (not imported here: it pulls in torch)
LISA_CONFIG_CHOICES = ("authors", "project")


def _lisa_options(pairs: list[str]) -> dict:
    """``["query_code_gradient=true", "soft_query=code"]`` -> {flag: value}; booleans are
    true/false (also 1/0, yes/no), anything else stays a string. ValueError when a pair
    has no ``=``."""
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--lisa-set expects FLAG=VALUE, got {pair!r}")
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            options[name.strip()] = True
        elif low in ("false", "0", "no"):
            options[name.strip()] = False
        else:
            options[name.strip()] = value.strip()
    return options


def _load_task(args: argparse.Namespace):
    """(task, None) or (None, error message) for the data the arguments name; the
    protocol's negatives are drawn with seed 0 (as for the built-in data sets)."""
    from harness.datasets.registry import DatasetPluginError, load_registered_dataset
    from harness.datasets.user_files import InteractionColumns, load_interactions
    from harness.seqrec.sequences import SeqRecData, leave_last_out
    from harness.seqrec.training import SeqRecTask, load_task

    given = [
        flag
        for flag, value in (
            ("--dataset", args.dataset),
            ("--inter", args.inter),
            ("--dataset-card", args.dataset_card),
        )
        if value is not None
    ]
    if len(given) > 1:
        return None, f"give one of --dataset, --inter and --dataset-card, not {' and '.join(given)}"
    if args.columns is not None and args.inter is None:
        return None, "--columns applies to --inter (a dataset card names its own columns)"
    if args.inter is not None or args.dataset_card is not None:
        source = f"--inter {args.inter}" if args.inter else f"--dataset-card {args.dataset_card}"
        try:
            columns = InteractionColumns.parse(args.columns) if args.columns else None
            data = load_interactions(args.inter, card=args.dataset_card, columns=columns)
        except (OSError, ValueError) as exc:
            return None, str(exc)
    else:
        name = args.dataset or "synthetic"
        source = f"--dataset {name}"
        if name in BUILTIN_DATASETS:
            try:
                return load_task(name, num_negatives=args.negatives, seed=0), None
            except (OSError, ValueError) as exc:
                return None, f"{source}: {exc}"
        try:
            data = load_registered_dataset(name, seed=0, kinds=(SeqRecData, SeqRecTask))
        except DatasetPluginError as exc:
            return None, f"{source}: {exc}; built in: {', '.join(BUILTIN_DATASETS)}"
        if isinstance(data, SeqRecTask):
            return data, None
    try:
        train, valid, test = leave_last_out(data, num_negatives=args.negatives, seed=0)
    except ValueError as exc:
        return None, f"{source}: {exc}; lower --negatives"
    return SeqRecTask(data=data, train=train, valid=valid, test=test), None


def run(args: argparse.Namespace) -> int:
    import torch

    from harness.results import machine_fingerprint, source_revision, write_json_atomic
    from harness.seqrec.sasrec import canonical_method
    from harness.seqrec.statistics import mean_interval
    from harness.seqrec.training import TrainConfig, train_and_evaluate, with_negatives

    if args.threads:
        torch.set_num_threads(args.threads)
    authors = args.dataset == "ml-1m" and args.inter is None
    try:
        lisa_options = _lisa_options(args.lisa_set)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = TrainConfig(
        d_model=args.dim if args.dim is not None else (128 if authors else 64),
        max_len=args.max_len if args.max_len is not None else (200 if authors else 50),
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        dropout=args.dropout,
        lisa_config=args.lisa_config,
        lisa_options=lisa_options,
    )
    for flag, value in (
        ("--dim", cfg.d_model),
        ("--max-len", cfg.max_len),
        ("--batch-size", cfg.batch_size),
        ("--epochs", cfg.epochs),
        ("--patience", cfg.patience),
        ("--negatives", args.negatives),
    ):
        if value < 1:
            print(f"error: {flag} must be >= 1, got {value}", file=sys.stderr)
            return 2
    try:
        cfg.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    task, error = _load_task(args)
    if error is None:
        try:
            task = with_negatives(task, args.negatives_from, num_negatives=args.negatives, seed=0)
        except ValueError as exc:
            error = f"--negatives-from {args.negatives_from}: {exc}; lower --negatives"
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    protocol, baselines = _protocol_check(task, args)
    try:
        limits = limits_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from harness.runner.isolation import IsolatedRunner

    records = []
    with IsolatedRunner(limits) as runner:
        for seed in args.seeds:
            cfg.seed = seed
            outcome = runner.call(
                train_and_evaluate,
                task,
                args.method,
                cfg,
                extra=tuple(args.plugin),
                progress=not args.no_progress,
            )
            if outcome.status == "error":
                first = outcome.message.splitlines()[0]
                kind, _, text = first.partition(": ")
                if kind in ("PluginError", "PluginTypeError"):  # names the plugin reference
                    print(f"error: {text}", file=sys.stderr)
                    return 2
                if kind == "ValueError":
                    print(f"error: --method {args.method}: {text}", file=sys.stderr)
                    return 2
            if outcome.ok:
                rec = outcome.value
            else:  # crashed, hung, out of memory or raised: a record with that status
                rec = {
                    "method": args.method,
                    "dataset": task.data.name,
                    "seed": seed,
                    "status": outcome.describe().splitlines()[0][:300],
                    "message": outcome.message[-2000:],
                }
            records.append(rec)
            if rec["status"] != "ok":
                # a diverged run has no score: say so, keep the record, exit non-zero
                print(
                    f"error: {rec['method']} on {rec['dataset']} (seed {seed}): {rec['status']}; "
                    "no score reported",
                    file=sys.stderr,
                )
                break
            t = rec["test"]
            lisa = ""
            if rec.get("lisa_config") is not None:
                changed = ", ".join(f"{k}={v}" for k, v in sorted(lisa_options.items()))
                lisa = f"; LISA config {cfg.lisa_config}" + (f" with {changed}" if changed else "")
            print(
                f"{rec['method']} on {rec['dataset']} (seed {seed}; {rec['users']} users, "
                f"{rec['items']} items; D={cfg.d_model}, max_len={cfg.max_len}{lisa}; best epoch "
                f"{rec['best_epoch']}/{rec['epochs_run']})\n"
                f"  test   HR@5 {t['HR@5']:.4f}  NDCG@5 {t['NDCG@5']:.4f}  "
                f"HR@10 {t['HR@10']:.4f}  NDCG@10 {t['NDCG@10']:.4f}\n"
                f"  valid  HR@10 {rec['valid']['HR@10']:.4f}  "
                f"NDCG@10 {rec['valid']['NDCG@10']:.4f}\n"
                f"  epoch time {rec['epoch_time_s']:.2f} s (median of {rec['epochs_run']} training "
                f"passes, {rec['threads']} threads)\n"
                f"  peak heap during one training step {_fmt_bytes(rec['train_step_peak_bytes'])} "
                f"(memray); process max RSS {rec['process_max_rss_bytes'] / 2**20:.0f} MiB"
            )
    diverged = [r for r in records if r["status"] != "ok"]
    summary = None
    if len(records) > 1 and not diverged:
        summary = {}
        method = records[0]["method"]
        print(f"{method}: test metrics over {len(records)} seeds (mean ± 95% t interval)")
        for key in METRICS:
            interval = mean_interval([r["test"][key] for r in records], level=0.95)
            summary[key] = interval.as_dict()
            print(
                f"  {key:<7} {interval.format()}  [{interval.low:.4f}, {interval.high:.4f}]  "
                f"sd {interval.sd:.4f}"
            )
    if protocol["warning"] is not None:
        print(f"warning: {protocol['warning']}", file=sys.stderr)
    if records and not diverged:  # beside the method's scores; none for a diverged run
        mean_hr10 = statistics.mean(r["test"]["HR@10"] for r in records)
        _print_baselines(baselines, protocol, canonical_method(args.method), mean_hr10)
    if args.output:
        result = {"runs": records, "protocol": protocol, "baselines": baselines}
        result["provenance"] = {
            "options": {k: v for k, v in vars(args).items() if k != "func"},
            "machine": machine_fingerprint(),
            "source": source_revision(),
        }
        if summary is not None:
            result["summary"] = summary
        write_json_atomic(args.output, json.loads(json.dumps(result, default=str)))
    return 1 if diverged else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "seqrec",
        help="train SASRec with a pluggable attention layer; print HR/NDCG, time, memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", default="lisa-base", help="attention method (see above)")
    parser.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="interactions to train on: synthetic (the default), ml-100k, ml-1m (MovieLens: "
        "`python -m harness fetch-data` first) or a name registered in the "
        "lisa_bench.datasets entry-point group",
    )
    parser.add_argument(
        "--inter",
        default=None,
        metavar="FILE",
        help="your own interactions instead of --dataset: a CSV, TSV (e.g. recbole's .inter) "
        "or Parquet file, one event per row (user, item, time; see --columns)",
    )
    parser.add_argument(
        "--columns",
        default=None,
        metavar="user=COL,item=COL,time=COL",
        help="--inter's column names (default: user_id, item_id, timestamp; `time=` for "
        "none: events keep the file's order)",
    )
    parser.add_argument(
        "--dataset-card",
        default=None,
        metavar="CARD",
        help='your own interactions described by a JSON card: {"path": FILE, "format": '
        '"csv", "columns": {"user": ..., "item": ..., "time": ...}, "name": ...}; see '
        "docs/data.md, 'Bring your own data'",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="add an unpublished registry method, usable as --method (repeatable)",
    )
    parser.add_argument(
        "--dim", type=int, default=None, help="model width D (default: 128 on ml-1m, else 64)"
    )
    parser.add_argument(
        "--max-len", type=int, default=None, help="window (default: 200 on ml-1m, else 50)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="sequences per batch")
    parser.add_argument("--epochs", type=int, default=30, help="most training epochs")
    parser.add_argument(
        "--patience",
        type=int,
        default=3,
        help="stop after this many epochs without a better validation NDCG@10",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout rate")
    parser.add_argument(
        "--negatives", type=int, default=100, help="sampled negatives each target is ranked against"
    )
    parser.add_argument(
        "--negatives-from",
        choices=NEGATIVES_FROM,
        default="history-excluded",
        help="where evaluation negatives come from: history-excluded (the authors' protocol: "
        "items the user never touched) or all (every item but the target, history allowed: "
        "the fair variant on repeat-consumption data)",
    )
    parser.add_argument(
        "--lisa-config",
        choices=LISA_CONFIG_CHOICES,
        default="authors",
        help="LISA layers and their wiring: authors (the published code's semantics, the "
        "default) or project (this project's variant; see docs/downstream-ml-1m.md)",
    )
    parser.add_argument(
        "--lisa-set",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="change one LISAConfig flag of --lisa-config (repeatable), e.g. "
        "query_code_gradient=true, soft_query=projected, soft_residual=false, "
        "regularizer=project, quantize_clean_input=false, reconstruction_residual=false, "
        "quantized_targets=false, scale_targets=true, item_init=normal",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="one training run per seed; with several, each test metric's mean and 95%% "
        "Student-t interval over the seeds",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--output", default=None, help="also write the records as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_isolation_arguments(parser, timeout_s=24 * 3600.0)
    parser.set_defaults(func=run)
