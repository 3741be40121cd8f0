"""Training and evaluation of the HEP model with any sampler x estimator.

Per epoch it records: edges in computation (kept edges summed over the training
batches) and the edges exhaustive aggregation would use for the same batches, wall time
of the training pass, peak memory of the training pass, the loss, and the task metric
on the validation and test sets (Micro/Macro-F1 for node classification, ROC-AUC for
link prediction). Evaluation always aggregates exhaustively, so every configuration is
scored by the same rule.

Divergence: a training loss that is NaN or +-inf stops training at once (before that
step's backward pass). The last record then has ``status`` ``"diverged: non-finite loss at
epoch E step S"`` (S counts the epoch's batches from 1; every other record has ``"ok"``),
``loss`` None, and validation/test metrics 0 (Macro-F1 0 for node classification): a
diverged run never reports a score. Evaluation counts a node whose class logits are not
all finite as misclassified, and ``roc_auc`` ranks non-finite link scores as losses, so a
model that outputs NaN never scores well either.

Peak memory, two figures: ``activation_mb``, the largest total size of the tensors
autograd saved for the backward pass in one training step (distinct storages, counted
through ``torch.autograd.graph.saved_tensors_hooks``; deterministic, and the part of
memory that sampling shrinks); and ``peak_memory_mb``, on CUDA
torch.cuda.max_memory_allocated after a reset, on CPU the peak resident set size (Linux
/proc/self/statm, sampled every 5 ms by a thread) above the resident size at the
start of the epoch. The CPU figure includes allocator caching (after the first epoch
freed memory is reused and it often reads 0), so compare configurations run in separate
processes and prefer ``activation_mb`` on CPU.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.datasets.graph_task import GraphTask
from harness.graph.hep_model import HEPModel
from harness.graph.hetero_metrics import macro_f1, micro_f1, roc_auc
from impls.sampling import ESTIMATORS, SAMPLERS, Adaptive, ExhaustiveSampler, ImportanceSampling
from impls.sampling.pairing import check_pairing

__all__ = ["TrainConfig", "EpochRecord", "train_graph_model", "make_sampler"]


@dataclass
class TrainConfig:
    task: str = "node"  # "node" or "link"
    sampler: str = "type-fusion"
    estimator: str = "self-normalized"
    budget: int = 32
    replace: bool = True
    epochs: int = 5
    batch_size: int = 1024
    dim: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.0
    xi: float = 0.5
    seed: int = 0
    layers: int = 1  # HEP propagation steps: 1 or 2 (each hop sampled by the sampler)

    def check(self) -> None:
        if self.task not in ("node", "link"):
            raise ValueError(f"task must be 'node' or 'link', got {self.task!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {self.sampler!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(
                f"estimator must be one of {sorted(ESTIMATORS)}, got {self.estimator!r}"
            )
        for name in ("budget", "epochs", "batch_size", "dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.layers not in (1, 2):
            raise ValueError(f"layers must be 1 or 2, got {self.layers!r}")
        check_pairing(self.sampler, self.estimator)


@dataclass
class EpochRecord:
    epoch: int
    loss: float | None  # mean training loss; None for a diverged epoch
    edges_in_computation: int
    exhaustive_edges: int
    seconds: float
    peak_memory_mb: float
    activation_mb: float
    val_metric: float
    test_metric: float
    test_macro_f1: float | None = None
    status: str = "ok"  # or "diverged: non-finite loss at epoch E step S"

    def as_dict(self) -> dict:
        return asdict(self)


def make_sampler(name: str, replace: bool = True):
    cls = SAMPLERS[name]
    try:
        return cls(replace=replace)
    except TypeError:
        return cls()


class _PeakMemory:
    """Peak memory above the level at entry, in MiB (see module docstring)."""

    def __init__(self) -> None:
        self.peak = 0.0

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * 4096
        except OSError:  # pragma: no cover - non-Linux
            return 0

    def __enter__(self):
        self._base = self._rss()
        self._max = self._base
        self._stop = threading.Event()

        def watch():
            while not self._stop.is_set():
                self._max = max(self._max, self._rss())
                time.sleep(0.005)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        if torch.cuda.is_available():  # pragma: no cover - no GPU here
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, self._rss())
        self.peak = (self._max - self._base) / 2**20
        return False


class _SavedBytes:
    """Total bytes of the distinct storages autograd saves for backward."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: set[tuple[int, int]] = set()

    def pack(self, t: Tensor) -> Tensor:
        try:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # pragma: no cover - exotic tensors
            key = (id(t), t.numel() * t.element_size())
        if key not in self._seen:
            self._seen.add(key)
            self.total += key[1]
        return t

    @staticmethod
    def unpack(t: Tensor) -> Tensor:
        return t


def _batches(ids: Tensor, size: int, gen: torch.Generator) -> list[Tensor]:
    perm = ids[torch.randperm(ids.numel(), generator=gen)]
    return [perm[i : i + size].sort().values for i in range(0, perm.numel(), size)]


def _exhaustive_reps(
    model: HEPModel, task: GraphTask, node_type: str, ids: Tensor, batch: int
) -> Tensor:
    sampler, est = ExhaustiveSampler(), ImportanceSampling()

    def sample(targets):
        blk = sampler.sample(task.graph, targets)
        return blk, est.weights(blk)

    reps = []
    for i in range(0, ids.numel(), batch):
        reps.append(model.represent({node_type: ids[i : i + batch]}, sample)[0][node_type])
    return torch.cat(reps) if reps else torch.zeros(0, 2 * model.dim)


@torch.no_grad()
def evaluate(
    model: HEPModel, task: GraphTask, cfg: TrainConfig, split: str
) -> tuple[float, float | None]:
    """(metric, macro-F1 or None) on ``split`` with exhaustive aggregation."""
    model.eval()
    if cfg.task == "node":
        ids = task.split[split]
        reps = _exhaustive_reps(model, task, task.node_type, ids, 4096)
        logits = model.classify(reps)
        # a row with a NaN/inf logit has no prediction: -1 matches no class (a miss)
        pred = torch.where(torch.isfinite(logits).all(1), logits.argmax(1), -1)
        target = task.labels[ids]
        return micro_f1(pred, target), macro_f1(pred, target, task.num_classes)
    src_t, _, dst_t = task.link_relation
    pos, neg = task.heldout_pos, task.heldout_neg
    half = pos.shape[1] // 2
    sel = slice(0, half) if split == "val" else slice(half, None)
    scores = []
    for pairs in (pos[:, sel], neg[:, sel]):
        u = _exhaustive_reps(model, task, src_t, pairs[0].unique(), 4096)
        v = _exhaustive_reps(model, task, dst_t, pairs[1].unique(), 4096)
        ui = torch.searchsorted(pairs[0].unique(), pairs[0])
        vi = torch.searchsorted(pairs[1].unique(), pairs[1])
        scores.append(model.link_score(u[ui], v[vi]))
    return roc_auc(scores[0], scores[1]), None


def train_graph_model(
    task: GraphTask,
    cfg: TrainConfig,
    progress: Callable[[int], object] | None = None,
) -> tuple[HEPModel, list[EpochRecord]]:
    """Train for cfg.epochs; ``progress(n)`` is called after each batch with the batch
    count (e.g. a tqdm ``update``). Returns the model and one record per epoch run; when
    the loss becomes non-finite training stops and the last record says so in its
    ``status`` (see the module docstring)."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = HEPModel(
        task.graph,
        cfg.dim,
        task.num_classes if cfg.task == "node" else 0,
        cfg.seed,
        layers=cfg.layers,
    )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = make_sampler(cfg.sampler, cfg.replace)
    est = (
        ESTIMATORS[cfg.estimator](xi=cfg.xi)
        if cfg.estimator == "adaptive"
        else ESTIMATORS[cfg.estimator]()
    )
    if cfg.task == "link" and task.link_relation is None:
        raise ValueError(f"task {task.name!r} has no held-out edges for link prediction")
    records = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        kept = total = 0
        losses = []
        activation = 0
        status = "ok"
        start = time.perf_counter()
        with _PeakMemory() as mem:
            for step, batch in enumerate(_epoch_batches(task, cfg, gen), start=1):
                opt.zero_grad()
                saved = _SavedBytes()
                with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
                    loss, blocks = _loss(model, task, cfg, sampler, est, batch, gen)
                activation = max(activation, saved.total)
                kept += sum(b.edges_in_computation for b in blocks)
                total += sum(b.batch_edges for b in blocks)
                value = float(loss.detach())
                if not math.isfinite(value):
                    status = f"diverged: non-finite loss at epoch {epoch} step {step}"
                    break
                loss.backward()
                opt.step()
                losses.append(value)
                if progress is not None:
                    progress(1)
        seconds = time.perf_counter() - start
        peak = mem.peak
        if torch.cuda.is_available():  # pragma: no cover
            peak = torch.cuda.max_memory_allocated() / 2**20
        if status != "ok":
            records.append(
                EpochRecord(
                    epoch,
                    None,
                    kept,
                    total,
                    seconds,
                    peak,
                    activation / 2**20,
                    0.0,
                    0.0,
                    0.0 if cfg.task == "node" else None,
                    status,
                )
            )
            break
        val, _ = evaluate(model, task, cfg, "val")
        test, macro = evaluate(model, task, cfg, "test")
        records.append(
            EpochRecord(
                epoch,
                sum(losses) / max(1, len(losses)),
                kept,
                total,
                seconds,
                peak,
                activation / 2**20,
                val,
                test,
                macro,
            )
        )
    return model, records


def num_batches(task: GraphTask, cfg: TrainConfig) -> int:
    n = (
        task.split["train"].numel()
        if cfg.task == "node"
        else task.graph.relations[task.link_relation].num_edges
    )
    return -(-n // cfg.batch_size)


def _epoch_batches(task: GraphTask, cfg: TrainConfig, gen: torch.Generator):
    if cfg.task == "node":
        yield from _batches(task.split["train"], cfg.batch_size, gen)
        return
    ei = task.graph.edge_index(task.link_relation)
    for idx in _batches(torch.arange(ei.shape[1]), cfg.batch_size, gen):
        yield ei[:, idx]


def _reps_for(model, task, sampler, est, cfg, targets: dict[str, Tensor], gen):
    # only the adaptive sampler reads edge weights; the callable form computes a_e for
    # this batch's edges only (O(batch edges), not O(E))
    a = model.proposal_edge_weight if cfg.sampler == "adaptive" else None

    def sample(hop_targets):
        block = sampler.sample(task.graph, hop_targets, cfg.budget, gen, a)
        return block, est.weights(block)

    reps, blocks = model.represent(targets, sample)
    penalty = None
    if isinstance(est, Adaptive):  # on the innermost hop, whose inputs are the embeddings
        penalty = est.variance_penalty(blocks[-1], model.embed, model.edge_weight)
    return reps, blocks, penalty


def _loss(model, task, cfg, sampler, est, batch, gen):
    if cfg.task == "node":
        reps, blocks, penalty = _reps_for(
            model, task, sampler, est, cfg, {task.node_type: batch}, gen
        )
        loss = F.cross_entropy(model.classify(reps[task.node_type]), task.labels[batch])
    else:
        src_t, _, dst_t = task.link_relation
        n_dst = task.graph.num_nodes[dst_t]
        neg_dst = torch.randint(0, n_dst, (batch.shape[1],), generator=gen)
        src_ids = batch[0].unique()
        dst_ids = torch.cat([batch[1], neg_dst]).unique()
        targets = {src_t: src_ids} if src_t == dst_t else {src_t: src_ids, dst_t: dst_ids}
        if src_t == dst_t:
            targets = {src_t: torch.cat([src_ids, dst_ids]).unique()}
        reps, blocks, penalty = _reps_for(model, task, sampler, est, cfg, targets, gen)
        u_ids, v_ids = targets[src_t], targets[dst_t]
        u = reps[src_t][torch.searchsorted(u_ids, batch[0])]
        pos = model.link_score(u, reps[dst_t][torch.searchsorted(v_ids, batch[1])])
        neg = model.link_score(u, reps[dst_t][torch.searchsorted(v_ids, neg_dst)])
        loss = F.binary_cross_entropy_with_logits(
            torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        )
    if penalty is not None:
        loss = loss + penalty
    return loss, blocks
