"""Training and evaluation of the SASRec-style model (the authors' protocol).

* Data: ``load_task`` gives the protocol's splits for ``synthetic`` (the seeded default),
  ``ml-100k`` or ``ml-1m`` (fetched files, see ``harness.datasets.cache``) or an atomic file.
* Negatives (``negatives_from``): ``"history-excluded"`` (the default, the authors'
  protocol: 100 items the user never touched, drawn by ``leave_last_out``) or ``"all"``
  (the repeat-aware variant, :func:`with_negatives`: items drawn uniformly without
  replacement from every item except the target, so items of the user's history can be
  negatives). On repeat-consumption data the default lets a "seen before" heuristic rank
  the target first whenever the user had it before (``harness.seqrec.baselines``).
* LISA layers: ``TrainConfig.lisa_config`` (``"authors"``, the default, or ``"project"``)
  plus ``lisa_options`` (individual ``LISAConfig`` flags) choose the layers' semantics and
  the model's wiring (``harness.seqrec.sasrec``); the record's ``lisa_config`` lists them.
* Training: each user's training sequence s_1..s_{T-2}; inputs s_1..s_{T-3}, targets
  s_2..s_{T-2}, both windowed to the last ``max_len`` events and left-padded; next-item
  BCE at every position with one negative per position drawn uniformly from 1..n (seeded;
  SASRec's sampler); Adam (lr 1e-3, betas (0.9, 0.98)); users shuffled per epoch (seeded).
* Early stopping: validation NDCG@10 after every epoch; stop after ``patience`` epochs
  without improvement; the best model is restored and evaluated on the test split.
* Divergence: a training loss that is NaN or +-inf stops training at once (before the
  backward pass of that step). The record's ``status`` is then ``"diverged: non-finite
  loss at epoch E step S"`` (S counts the epoch's batches from 1) instead of ``"ok"``, and
  its ``valid`` and ``test`` metrics are all 0: a diverged run never reports a score,
  even if an earlier epoch validated well. Its ``epoch_time_s`` covers the completed
  epochs only (None when none completed) and no training-step memory is measured.
* Reported cost: wall time of each epoch's training pass (evaluation excluded; median
  over epochs, the first excluded when there are several), the peak heap allocated
  during one training step (forward, backward and optimiser step on a full batch, on a
  copy of the model) recorded by
  ``harness.measure.peak_memory_bytes`` (memray; None without memray), and the process's
  peak resident set size (``ru_maxrss``: everything the process ever held, data included).
"""

from __future__ import annotations

import copy
import math
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harness.datasets.cache import dataset_path, read_interactions, sha256_file
from harness.seqrec.ranking_metrics import MISS, ranking_metrics, ranks
from harness.seqrec.sasrec import SASRec, canonical_method, make_attention_layer
from harness.seqrec.sequences import (
    EvalSplit,
    SeqRecData,
    build_sequences,
    leave_last_out,
    sequences_checksum,
)
from harness.seqrec.synthetic_sequences import SyntheticConfig, synthetic_events

__all__ = [
    "NEGATIVES_FROM",
    "TrainConfig",
    "SeqRecTask",
    "evaluate",
    "left_pad",
    "load_task",
    "negatives_from_all",
    "random_ranker_metrics",
    "train_and_evaluate",
    "with_negatives",
]

DATASET_CHOICES = ("synthetic", "ml-100k", "ml-1m")
NEGATIVES_FROM = ("history-excluded", "all")  # the first is the authors' protocol


@dataclass
class TrainConfig:
    d_model: int = 64
    max_len: int = 50
    batch_size: int = 128
    epochs: int = 30
    patience: int = 3
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    dropout: float = 0.1
    reg_weight: float = 1.0  # extra factor on LISA-Soft's (already weighted) regulariser
    # LISA layers only: preset "authors" (the default) or "project", then flag overrides
    # (impls.attention.lisa_layers.LISAConfig field -> value)
    lisa_config: str = "authors"
    lisa_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    eval_batch_size: int = 512
    calibration_users: int = 64
    measure_memory: bool = True

    def check(self) -> None:
        for name in ("d_model", "max_len", "batch_size", "epochs", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        self.resolved_lisa_config()

    def resolved_lisa_config(self):
        """The ``LISAConfig`` the LISA layers get (ValueError for a bad name or flag)."""
        from impls.attention.lisa_layers import lisa_config

        return lisa_config(self.lisa_config, **self.lisa_options)


@dataclass
class SeqRecTask:
    data: SeqRecData
    train: list[np.ndarray]
    valid: EvalSplit
    test: EvalSplit


def load_task(
    dataset: str = "synthetic",
    *,
    path: str | None = None,
    num_negatives: int = 100,
    seed: int = 0,
    synthetic: SyntheticConfig | None = None,
    data_root: str | None = None,
    negatives_from: str = "history-excluded",
) -> SeqRecTask:
    """The protocol's splits for ``dataset`` (``synthetic``, ``ml-100k``, ``ml-1m``), or
    for an atomic ``.inter`` file at ``path``. Negatives are drawn with ``seed``, from the
    items the user never touched (``negatives_from="history-excluded"``, the default) or
    from every item but the target (``"all"``, see :func:`with_negatives`)."""
    _check_negatives_from(negatives_from)
    if path is not None:
        events = read_interactions(path)
        data = build_sequences(events, name=Path(path).name, checksum=sha256_file(path))
    elif dataset == "synthetic":
        data = build_sequences(synthetic_events(synthetic), name="synthetic")
        data.checksum = sequences_checksum(data)
    elif dataset in ("ml-100k", "ml-1m"):
        file = dataset_path(dataset, root=data_root)
        data = build_sequences(read_interactions(file), name=dataset, checksum=sha256_file(file))
    else:
        raise ValueError(f"dataset must be one of {DATASET_CHOICES}, got {dataset!r}")
    train, valid, test = leave_last_out(data, num_negatives=num_negatives, seed=seed)
    task = SeqRecTask(data=data, train=train, valid=valid, test=test)
    return with_negatives(task, negatives_from, seed=seed)


def _check_negatives_from(negatives_from: str) -> None:
    if negatives_from not in NEGATIVES_FROM:
        raise ValueError(f"negatives_from must be one of {NEGATIVES_FROM}, got {negatives_from!r}")


def negatives_from_all(
    targets: np.ndarray, num_items: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, count): for each target, ``count`` distinct items of 1..num_items other than
    the target, uniformly without replacement (the user's history is allowed)."""
    if count > num_items - 1:
        raise ValueError(
            f"num_negatives={count} but only {num_items - 1} items differ from the target "
            f"(num_items={num_items})"
        )
    out = np.empty((len(targets), count), dtype=np.int64)
    for row, target in enumerate(targets):
        # a uniform subset of 1..n-1, shifted past the target: a uniform subset of
        # {1..n} without the target
        draw = rng.choice(num_items - 1, size=count, replace=False) + 1
        out[row] = draw + (draw >= target)
    return out


def with_negatives(
    task: SeqRecTask,
    negatives_from: str,
    *,
    num_negatives: int | None = None,
    seed: int = 0,
) -> SeqRecTask:
    """``task`` with its evaluation negatives drawn as ``negatives_from`` says.

    ``"history-excluded"``: ``task`` itself (its negatives are the protocol's, as drawn by
    ``leave_last_out``). ``"all"``: a new task with the same sequences and targets whose
    validation and test negatives (``num_negatives`` each, default: as many as ``task``
    has) are drawn by :func:`negatives_from_all` with ``seed``, user by user, validation
    before test."""
    _check_negatives_from(negatives_from)
    if negatives_from == "history-excluded":
        return task
    count = task.test.negatives.shape[1] if num_negatives is None else num_negatives
    if count < 1:
        raise ValueError(f"num_negatives must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    n = task.data.num_items
    valid, test = [], []
    for v_target, t_target in zip(task.valid.targets, task.test.targets, strict=True):
        valid.append(negatives_from_all(np.asarray([v_target]), n, count, rng)[0])
        test.append(negatives_from_all(np.asarray([t_target]), n, count, rng)[0])

    def split(old: EvalSplit, negs: list[np.ndarray]) -> EvalSplit:
        stacked = np.stack(negs) if negs else np.zeros((0, count), dtype=np.int64)
        return EvalSplit(inputs=old.inputs, targets=old.targets, negatives=stacked)

    valid_split, test_split = split(task.valid, valid), split(task.test, test)
    return SeqRecTask(data=task.data, train=task.train, valid=valid_split, test=test_split)


def left_pad(seqs: list[np.ndarray], max_len: int) -> Tensor:
    """Last ``max_len`` items of each sequence, left-padded with 0: (batch, width) int64,
    width = min(max_len, longest sequence) (at least 1)."""
    width = max(1, min(max_len, max((len(s) for s in seqs), default=1)))
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[-width:]
        if len(tail):
            out[row, width - len(tail) :] = tail
    return torch.from_numpy(out)


def _training_tensors(train: list[np.ndarray], max_len: int) -> tuple[Tensor, Tensor]:
    inputs = left_pad([s[:-1] for s in train], max_len)
    targets = left_pad([s[1:] for s in train], max_len)
    # left_pad aligns both on the right: target at column c follows input at column c.
    return inputs, targets


@torch.no_grad()
def evaluate(model: SASRec, split: EvalSplit, *, max_len: int, batch_size: int) -> dict:
    """HR@5/10, NDCG@5/10 of ``split`` (target ranked against its negatives)."""
    model.eval()
    all_ranks = []
    for start in range(0, len(split.inputs), batch_size):
        seqs = left_pad(split.inputs[start : start + batch_size], max_len)
        h = model(seqs)[:, -1]  # last position (sequences are right-aligned)
        target = torch.from_numpy(split.targets[start : start + batch_size])
        negatives = torch.from_numpy(split.negatives[start : start + batch_size])
        candidates = torch.cat([target[:, None], negatives], dim=1)
        scores = model.score(h, candidates)
        all_ranks.append(ranks(scores[:, 0], scores[:, 1:]))
    return ranking_metrics(torch.cat(all_ranks))


def _loss(model: SASRec, inputs: Tensor, targets: Tensor, gen: torch.Generator, reg_weight: float):
    h = model(inputs)
    valid = targets > 0
    negatives = torch.randint(1, model.num_items + 1, targets.shape, generator=gen)
    pos = model.score(h, targets[..., None])[..., 0]
    neg = model.score(h, negatives[..., None])[..., 0]
    bce = nn.functional.binary_cross_entropy_with_logits
    loss = bce(pos[valid], torch.ones_like(pos[valid])) + bce(
        neg[valid], torch.zeros_like(neg[valid])
    )
    reg = model.regularizer()
    if reg is not None:
        loss = loss + reg_weight * reg
    return loss


def _calibrate(model: SASRec, inputs: Tensor, users: int, gen: torch.Generator) -> None:
    layer = model.attention
    if not hasattr(layer, "calibrate"):
        return
    pick = torch.randperm(inputs.shape[0], generator=gen)[:users]
    with torch.no_grad():
        was = model.training
        model.eval()
        e, mask = model.embed(inputs[pick])
        layer.calibrate(e, mask)
        model.train(was)


def train_and_evaluate(
    task: SeqRecTask,
    method: str,
    config: TrainConfig | None = None,
    *,
    extra: tuple[str, ...] = (),
    hyperparameters: dict[str, Any] | None = None,
    progress: bool = True,
    log=None,
) -> dict:
    """Train ``method``'s model on ``task``; returns a JSON-ready record (see module):
    ``status`` is ``"ok"`` or ``"diverged: non-finite loss at epoch E step S"``."""
    from tqdm import tqdm

    from harness.measure import peak_memory_bytes

    cfg = config or TrainConfig()
    cfg.check()
    torch.manual_seed(cfg.seed)
    lisa = cfg.resolved_lisa_config()
    layer = make_attention_layer(
        method, cfg.d_model, extra=extra, lisa_config=lisa, **(hyperparameters or {})
    )
    model = SASRec(
        task.data.num_items, layer, d_model=cfg.d_model, max_len=cfg.max_len, dropout=cfg.dropout
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    inputs, targets = _training_tensors(task.train, cfg.max_len)
    keep = (targets > 0).any(dim=1)  # users with at least one training pair
    inputs, targets = inputs[keep], targets[keep]
    gen = torch.Generator().manual_seed(cfg.seed)
    n_batches = math.ceil(inputs.shape[0] / cfg.batch_size)
    best, best_score, best_epoch, stale = None, -math.inf, 0, 0
    history, epoch_times = [], []
    status = "ok"
    say = log or (lambda msg: print(msg, file=sys.stderr))
    for epoch in range(1, cfg.epochs + 1):
        _calibrate(model, inputs, cfg.calibration_users, gen)
        model.train()
        order = torch.randperm(inputs.shape[0], generator=gen)
        begin = time.perf_counter()
        total = 0.0
        bar = tqdm(
            range(n_batches),
            desc=f"{canonical_method(method)} epoch {epoch}",
            disable=not progress,
            leave=False,
            file=sys.stderr,
        )
        for b in bar:
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = _loss(model, inputs[idx], targets[idx], gen, cfg.reg_weight)
            value = loss.item()
            if not math.isfinite(value):
                status = f"diverged: non-finite loss at epoch {epoch} step {b + 1}"
                break
            loss.backward()
            optimiser.step()
            total += value
            bar.set_postfix(loss=f"{total / (b + 1):.4f}")
        bar.close()
        if status != "ok":
            if progress:
                say(f"{canonical_method(method)}: {status} (loss {value}); training stopped")
            break
        epoch_times.append(time.perf_counter() - begin)
        valid = evaluate(model, task.valid, max_len=cfg.max_len, batch_size=cfg.eval_batch_size)
        history.append({"epoch": epoch, "loss": total / n_batches, **valid})
        if progress:
            say(
                f"epoch {epoch}: loss {total / n_batches:.4f}  valid NDCG@10 "
                f"{valid['NDCG@10']:.4f}  HR@10 {valid['HR@10']:.4f}  {epoch_times[-1]:.2f}s"
            )
        if valid["NDCG@10"] > best_score:
            best, best_score, best_epoch, stale = copy.deepcopy(model), valid["NDCG@10"], epoch, 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if status == "ok":
        assert best is not None
        test = evaluate(best, task.test, max_len=cfg.max_len, batch_size=cfg.eval_batch_size)
        valid = {k: v for k, v in history[best_epoch - 1].items() if k not in ("epoch", "loss")}
    else:  # diverged: no score, whatever an earlier epoch achieved
        test = ranking_metrics(torch.full((1,), MISS, dtype=torch.int64))
        valid = dict(test)
    peak = None
    if cfg.measure_memory and status == "ok":
        probe = copy.deepcopy(best)
        probe.train()
        probe_opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr, betas=cfg.betas)
        idx = torch.arange(min(cfg.batch_size, inputs.shape[0]))
        probe_gen = torch.Generator().manual_seed(cfg.seed)

        def step():
            probe_opt.zero_grad(set_to_none=True)
            _loss(probe, inputs[idx], targets[idx], probe_gen, cfg.reg_weight).backward()
            probe_opt.step()

        step()  # Adam allocates its state on the first step; measure a steady-state step
        peak = peak_memory_bytes(step)
    return {
        "method": canonical_method(method),
        "status": status,
        "dataset": task.data.name,
        "data_checksum": task.data.checksum,
        "users": len(task.data.sequences),
        "items": task.data.num_items,
        "events": task.data.num_events,
        "config": {**asdict(cfg), "betas": list(cfg.betas)},
        # the LISA layer's flags in full (None for other methods)
        "lisa_config": asdict(model.lisa_config()) if model.lisa_config() is not None else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "valid": valid,
        "test": test,
        # the first epoch pays one-time costs (allocator, lazy init): excluded when possible
        "epoch_time_s": statistics.median(epoch_times[1:] or epoch_times) if epoch_times else None,
        "epoch_times_s": epoch_times,
        "train_step_peak_bytes": peak,
        "process_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": torch.get_num_threads(),
        "history": history,
    }


def random_ranker_metrics(split: EvalSplit, *, seed: int = 0) -> dict:
    """Metrics of a scorer that draws i.i.d. uniform scores (the chance baseline)."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(len(split.targets), split.negatives.shape[1] + 1, generator=gen)
    return ranking_metrics(ranks(scores[:, 0], scores[:, 1:]))
