"""Multi-query associative recall (MQAR): can a model built on an attention method look a
key up in its own context and return the value stored with it?

The probe of the Zoology / Based papers (Arora et al. 2023, 2024). Token ids, for a
vocabulary of size V (``vocab_size``), split into three disjoint sets::

    0                          the filler token
    1 .. K                     keys,   K = (V - 1) // 2
    K + 1 .. V - 1             values, V - 1 - K of them

Layout of one example of length L with N pairs (``num_pairs``; requires L >= 4 N)::

    position   0    1    2    3   ...  2N-2  2N-1 | 2N ............................ L-1
    input      k_1  v_1  k_2  v_2 ...  k_N   v_N  | filler, with the N keys repeated
                                                    once each, in random order, at N
                                                    random distinct positions
    target     -100 everywhere, except at a query position p holding key k_i:
               target[p] = v_i (the value paired with k_i in the prefix)

Keys of one example are distinct (drawn without replacement), values are drawn uniformly
with replacement. Accuracy is the fraction of query positions whose arg-max prediction is
the target; chance is about 1 / (V - 1 - K) for a model that knows only "a value comes".

The model (:class:`MQARModel`), the same for every method, d = ``dim``, h = ``heads``::

    x_0[l] = E[t_l] + E'[t_{l-1}] + P[l]              (batch, L, d); E, E', P learned,
                                                      t_{-1} = filler (the token shift)
    for each of 2 blocks:
        q, k, v = split(W_qkv LN(x))                 each (batch, h, L, d / h)
        x = x + W_o attn(q, k, v, causal=True)       attn: the registry method
        x = x + MLP(LN(x))                           MLP: d -> 2d -> GELU -> d
    logits = W_head LN(x)                             (batch, L, V)

The token shift E'[t_{l-1}] (the role of the short convolution in H3 / Based) puts the
key into the representation of the value after it, so that one attention step -- a query
key matching that shifted key and reading the value -- solves the task. Without it the
model must first grow a previous-token head, which on a CPU budget it does not: sdpa
stayed at 0.21 accuracy after 800 steps at L = 256 without the shift, and reaches 0.999
after 300 steps with it. So the probe measures retrieval by the attention method, not
how fast a circuit forms (``token_shift=False`` gives the plain model).

Trained with cross-entropy on the query positions only (AdamW, a short linear warm-up,
then cosine decay), on fresh seeded batches every step. Methods whose entry says
``calibrate=True`` (learned state such as k-means codebooks) are calibrated through
``impls.registry.build`` on a separate seeded batch of the training distribution, never
on the batch being attended, before training, every ``recalibrate_every`` steps and before
evaluation. A method that cannot serve causal float32 attention here (unavailable on
this machine, bidirectional only) is a ``skipped`` row with the registry's reason; one
that raises while training or evaluating is an ``error`` row, never a crash of the grid.

LISA as its authors define it is a layer, not a q/k/v operator: it quantises the block's
input and learns its codebooks with the model. The names of ``LAYER_METHODS``
(``lisa-base``, ``lisa-soft``, ``lisa-mini``, and ``lisa-base-nodecay`` with gamma = 1)
replace the
attention step of each block by ``W_o LISA(LN(x), causal=True)`` with the layer of
``impls.attention.lisa_layers`` in the authors' configuration (8 codebooks; W = 128 for
Base, 32 for Soft, 16 for Mini; gamma = e^-0.1); LISA-Soft's regulariser is added to the
loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from harness.results import write_json_atomic
from impls import registry
from impls.attention.lisa_layers import LISABase, LISAMini, LISASoft
from impls.registry import MethodSpec

__all__ = [
    "DEFAULTS",
    "DEFAULT_LENGTHS",
    "DEFAULT_METHODS",
    "FILLER",
    "IGNORE",
    "LAYER_METHODS",
    "LayerMethod",
    "MQARModel",
    "format_table",
    "make_mqar",
    "run_grid",
    "skip_reason",
    "train_and_evaluate",
    "token_sets",
]

FILLER = 0
IGNORE = -100  # target where no prediction is asked (F.cross_entropy's ignore_index)
DEFAULT_LENGTHS = (256, 512, 1024, 2048, 4096)
DEFAULT_METHODS = (
    "sdpa",
    "linear",
    "performer",
    "local_window",
    "lsh",
    "lisa_kmeans",
    "lisa-base",
    "lisa-soft",
)
DEFAULTS: dict[str, Any] = {
    "num_pairs": 8,
    "vocab_size": 64,
    "steps": 300,
    "batch": 16,
    "dim": 64,
    "heads": 2,
    "lr": 3e-3,
    "eval_examples": 256,
    "recalibrate_every": 50,
    "seed": 0,
}
# seed streams: training batches, held-out set, calibration batches, model initialisation
_TRAIN, _EVAL, _CALIBRATE, _INIT = 0, 1_000_003, 2_000_003, 3_000_017


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def token_sets(vocab_size: int) -> tuple[range, range]:
    """(key ids, value ids) for a vocabulary of ``vocab_size`` tokens, id 0 the filler:
    keys 1..K, values K+1..V-1 with K = (V - 1) // 2."""
    _check_int("vocab_size", vocab_size, 5)
    n_keys = (vocab_size - 1) // 2
    return range(1, n_keys + 1), range(n_keys + 1, vocab_size)


def make_mqar(
    num_examples: int, length: int, num_pairs: int, vocab_size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Seeded MQAR examples (layout in the module docstring).

    Returns ``inputs`` (num_examples, length) int64 and ``targets`` (num_examples, length)
    int64, ``IGNORE`` (-100) except at the ``num_pairs`` query positions of each row,
    where it is the value paired with the queried key. Same arguments, same tensors.

    ValueError naming the argument when: num_examples, num_pairs < 1; length < 4 *
    num_pairs (the pairs take 2N positions, the query region needs at least as many);
    vocab_size < 5 or too small for num_pairs distinct keys ((vocab_size - 1) // 2 >=
    num_pairs); seed not an int."""
    n = _check_int("num_examples", num_examples, 1)
    pairs = _check_int("num_pairs", num_pairs, 1)
    if isinstance(length, bool) or not isinstance(length, int) or length < 4 * pairs:
        raise ValueError(
            f"length must be an int >= 4 * num_pairs = {4 * pairs} (the {pairs} pairs take "
            f"{2 * pairs} positions and the query region at least as many), got {length!r}"
        )
    keys_ids, value_ids = token_sets(vocab_size)
    if len(keys_ids) < pairs:
        raise ValueError(
            f"vocab_size {vocab_size} has {len(keys_ids)} key tokens, fewer than num_pairs "
            f"= {pairs}: vocab_size must be >= {2 * pairs + 1}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    gen = torch.Generator().manual_seed(seed)
    keys = torch.rand(n, len(keys_ids), generator=gen).argsort(dim=1)[:, :pairs] + keys_ids[0]
    values = torch.randint(len(value_ids), (n, pairs), generator=gen) + value_ids[0]
    inputs = torch.full((n, length), FILLER, dtype=torch.long)
    inputs[:, 0 : 2 * pairs : 2] = keys
    inputs[:, 1 : 2 * pairs : 2] = values
    region = length - 2 * pairs
    where = torch.rand(n, region, generator=gen).argsort(dim=1)[:, :pairs] + 2 * pairs
    order = torch.rand(n, pairs, generator=gen).argsort(dim=1)  # pair asked at each query
    inputs.scatter_(1, where, keys.gather(1, order))
    targets = torch.full((n, length), IGNORE, dtype=torch.long)
    targets.scatter_(1, where, values.gather(1, order))
    return inputs, targets


@dataclass(frozen=True)
class LayerMethod:
    """A whole attention layer on the block input (batch, L, d) -> (batch, L, d), built by
    ``factory(d)``; used in place of ``q, k, v -> attn``. A layer that sets a scalar
    ``regularizer`` attribute in its forward has it added to the training loss."""

    name: str
    factory: Callable[[int], nn.Module]
    summary: str
    calibrate: bool = False  # as MethodSpec.calibrate: layers learn their state


LAYER_METHODS: dict[str, LayerMethod] = {
    m.name: m
    for m in (
        LayerMethod(
            "lisa-base",
            lambda d: LISABase(d, config="authors"),
            "LISA-Base, authors' configuration (8 codebooks, W = 128, gamma = e^-0.1)",
        ),
        LayerMethod(
            "lisa-base-nodecay",
            lambda d: LISABase(d, config="authors", gamma=1.0),
            "LISA-Base, authors' configuration but gamma = 1 (no recency decay)",
        ),
        LayerMethod(
            "lisa-mini",
            lambda d: LISAMini(d, config="authors"),
            "LISA-Mini, authors' configuration: LISA-Base over W = 16 sequence codewords "
            "(its target quantiser scores recommendation targets and is unused here)",
        ),
        LayerMethod(
            "lisa-soft",
            lambda d: LISASoft(d, config="authors"),
            "LISA-Soft, authors' configuration (8 codebooks, W = 32, gamma = e^-0.1)",
        ),
    )
}

Method = MethodSpec | LayerMethod


def _spec(method: str | Method) -> Method:
    if isinstance(method, (MethodSpec, LayerMethod)):
        return method
    if method in LAYER_METHODS:
        return LAYER_METHODS[method]
    return registry.get_method(method)


def skip_reason(spec: Method, *, head_dim: int, device: str = "cpu") -> str | None:
    """Why ``spec`` cannot serve this task here (unavailable on the machine, or refusing
    causal float32 attention of head dim ``head_dim`` on ``device``), or None. Layer
    methods run everywhere torch does."""
    if isinstance(spec, LayerMethod):
        return None
    ok, reason = registry.availability(spec)
    if not ok:
        return f"unavailable: {reason}"
    try:
        registry.check_request(
            spec, causal=True, dtype=torch.float32, device=device, head_dim=head_dim
        )
    except ValueError as exc:
        return str(exc)
    return None


class _Block(nn.Module):
    """Pre-norm block: x + W_o attn(q, k, v, causal) then x + MLP(LN(x)); with ``layer``
    (a whole attention layer, see :class:`LayerMethod`) x + W_o layer(LN(x)) instead."""

    def __init__(self, dim: int, heads: int, layer: nn.Module | None = None):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.layer = layer
        if layer is None:
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (batch, L, d) -> q, k, v, each (batch, heads, L, d / heads)."""
        batch, length, _ = x.shape
        parts = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = parts.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def forward(self, x: Tensor, attn: Callable[..., Tensor] | None) -> Tensor:
        if self.layer is not None:
            a = self.layer(self.norm1(x), causal=True)  # (batch, L, d)
        else:
            q, k, v = self.qkv_heads(x)
            a = attn(q, k, v, causal=True).transpose(1, 2).reshape(x.shape)
        x = x + self.out(a)
        return x + self.mlp(self.norm2(x))


class MQARModel(nn.Module):
    """The fixed MQAR model of the module docstring, attention from registry ``spec``.

    ``forward(tokens (batch, L) int64, L <= max_len) -> logits (batch, L, vocab_size)``.
    A ``calibrate=True`` method must be :meth:`calibrate`-d before the first forward."""

    def __init__(
        self,
        spec: Method,
        *,
        vocab_size: int,
        max_len: int,
        dim: int = 64,
        heads: int = 2,
        layers: int = 2,
        token_shift: bool = True,
        hyperparameters: dict[str, Any] | None = None,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be a multiple of heads {heads}")
        self.spec, self.hyperparameters = spec, dict(hyperparameters or {})
        self.head_dim, self.heads = dim // heads, heads
        self.tok = nn.Embedding(vocab_size, dim)
        self.prev = nn.Embedding(vocab_size, dim) if token_shift else None
        self.pos = nn.Embedding(max_len, dim)
        for table in (self.tok, self.prev, self.pos):
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        if isinstance(spec, LayerMethod):
            if self.hyperparameters:
                raise ValueError(f"layer method {spec.name!r} takes no hyperparameters")
            self.blocks = nn.ModuleList(
                _Block(dim, heads, spec.factory(dim)) for _ in range(layers)
            )
        else:
            self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.attns: list[Any] = [None] * layers
        if not spec.calibrate and not isinstance(spec, LayerMethod):
            self.attns = [self._build() for _ in range(layers)]

    def regularizer(self) -> Tensor | None:
        """Sum of the layers' ``regularizer`` after a forward (LISA-Soft sets one), or
        None when no layer has one."""
        terms = [getattr(b.layer, "regularizer", None) for b in self.blocks]
        terms = [t for t in terms if t is not None]
        return torch.stack(terms).sum() if terms else None

    def _build(self, calibration: Sequence[Tensor] | None = None) -> Any:
        return registry.build(
            self.spec, self.head_dim, self.heads, calibration=calibration, **self.hyperparameters
        )

    def embed(self, tokens: Tensor) -> Tensor:
        """x_0 (batch, L, d) of ``tokens`` (batch, L): E[t_l] (+ E'[t_{l-1}]) + P[l]."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        if self.prev is not None:
            x = x + self.prev(F.pad(tokens[:, :-1], (1, 0), value=FILLER))
        return x

    @torch.no_grad()
    def calibrate(self, tokens: Tensor) -> None:
        """Rebuild each block's method (``registry.build`` with ``calibration``) on the q,
        k, v that block sees for ``tokens`` (batch, L), block after block; no-op for
        methods without ``calibrate``."""
        if not self.spec.calibrate:
            return
        x = self.embed(tokens)
        for i, block in enumerate(self.blocks):
            self.attns[i] = self._build(calibration=block.qkv_heads(x))
            x = block(x, self.attns[i])

    def forward(self, tokens: Tensor) -> Tensor:
        if self.spec.calibrate and any(a is None for a in self.attns):
            raise RuntimeError(f"method {self.spec.name!r} needs calibrate(tokens) first")
        x = self.embed(tokens)
        for block, attn in zip(self.blocks, self.attns, strict=True):
            x = block(x, attn)
        return self.head(self.norm(x))


def _seed(seed: int, stream: int, index: int = 0) -> int:
    return (seed * 7_919 + stream + index * 104_729) % (2**63 - 1)


def train_and_evaluate(
    method: str | Method,
    length: int,
    *,
    num_pairs: int = DEFAULTS["num_pairs"],
    steps: int = DEFAULTS["steps"],
    batch: int = DEFAULTS["batch"],
    dim: int = DEFAULTS["dim"],
    lr: float = DEFAULTS["lr"],
    seed: int = DEFAULTS["seed"],
    heads: int = DEFAULTS["heads"],
    vocab_size: int = DEFAULTS["vocab_size"],
    eval_examples: int = DEFAULTS["eval_examples"],
    recalibrate_every: int = DEFAULTS["recalibrate_every"],
    token_shift: bool = True,
    hyperparameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train :class:`MQARModel` with ``method`` on MQAR of length ``length`` for ``steps``
    steps of ``batch`` fresh seeded examples, then evaluate on ``eval_examples`` held-out
    seeded examples (a different seed stream).

    Returns a dict: ``accuracy`` (fraction of held-out query positions predicted exactly),
    ``chance`` (1 / number of value tokens), ``final_loss`` (mean cross-entropy over the
    last min(20, steps) steps), ``train_seconds``, ``eval_seconds`` and the settings.
    Raises whatever the method raises, and FloatingPointError when the training loss or an
    evaluation logit is not finite (:func:`run_grid` turns either into an error row)."""
    spec = _spec(method)
    _check_int("steps", steps, 1)
    _check_int("batch", batch, 1)
    _check_int("eval_examples", eval_examples, 1)
    _check_int("recalibrate_every", recalibrate_every, 1)
    reason = skip_reason(spec, head_dim=dim // heads)
    if reason:
        raise ValueError(reason)
    make_mqar(1, length, num_pairs, vocab_size, seed)  # validates the task arguments
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(seed, _INIT))
        model = MQARModel(
            spec,
            vocab_size=vocab_size,
            max_len=length,
            dim=dim,
            heads=heads,
            token_shift=token_shift,
            hyperparameters=hyperparameters,
        )
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "tok" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "tok" not in n)]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=lr
    )
    warmup = max(1, steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)

    def calibrate(index: int) -> None:
        tokens, _ = make_mqar(batch, length, num_pairs, vocab_size, _seed(seed, _CALIBRATE, index))
        model.calibrate(tokens)

    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        if spec.calibrate and step % recalibrate_every == 0:
            calibrate(step)
        inputs, targets = make_mqar(batch, length, num_pairs, vocab_size, _seed(seed, _TRAIN, step))
        logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        extra = model.regularizer()
        objective = loss if extra is None else loss + extra
        if not bool(torch.isfinite(objective)):  # never a score from a diverged model
            raise FloatingPointError(
                f"{spec.name}: training loss is {objective.item()} at step {step} (L={length})"
            )
        optimiser.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        losses.append(loss.item())
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    model.eval()
    if spec.calibrate:
        calibrate(steps)
    inputs, targets = make_mqar(eval_examples, length, num_pairs, vocab_size, _seed(seed, _EVAL))
    correct = total = 0
    with torch.no_grad():
        for lo in range(0, eval_examples, batch):
            x, y = inputs[lo : lo + batch], targets[lo : lo + batch]
            asked = y != IGNORE
            logits = model(x)[asked]  # (queries, vocabulary)
            if not bool(torch.isfinite(logits).all()):
                raise FloatingPointError(
                    f"{spec.name}: non-finite logits in evaluation (L={length})"
                )
            correct += int((logits.argmax(-1) == y[asked]).sum())
            total += int(asked.sum())
    tail = losses[-min(20, steps) :]
    return {
        "method": spec.name,
        "length": length,
        "accuracy": correct / total,
        "chance": 1.0 / len(token_sets(vocab_size)[1]),
        "final_loss": sum(tail) / len(tail),
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - start,
        "num_pairs": num_pairs,
        "steps": steps,
        "batch": batch,
        "dim": dim,
        "heads": heads,
        "lr": lr,
        "vocab_size": vocab_size,
        "eval_examples": eval_examples,
        "token_shift": token_shift,
        "seed": seed,
    }


def run_grid(
    methods: Sequence[str | Method] = DEFAULT_METHODS,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    *,
    output: str | Path | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    runner: Any = None,
    seeds: Sequence[int] | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """One row per (method, length, seed): ``status`` "ok" (with :func:`train_and_evaluate`'s
    fields), "skipped" (``reason``: the registry's, e.g. bidirectional only, CUDA only) or
    "error" (``error``: "ExceptionType: message" of whatever the method raised). A method
    name the registry does not know is an error row too. ``settings`` go to
    :func:`train_and_evaluate`. With ``runner`` (a ``harness.runner.isolation
    .IsolatedRunner``), each row trains in its worker process: a method that hangs past
    the runner's timeout, aborts the interpreter or exceeds its memory cap is a row with
    status "timeout" / "crashed" / "error" (``error``: the runner's message) and the grid
    goes on; without one, rows train in this process. With ``output``, the rows and
    settings are written as JSON (``harness.results.write_json_atomic``) after every row,
    so an interrupted grid keeps what it finished; ``progress(row)`` is called after every
    row. Task settings that :func:`make_mqar` refuses (e.g. a length < 4 * num_pairs)
    raise its ValueError before anything is trained.

    ``seeds`` (distinct ints; default: the one ``seed`` of ``settings``) trains every
    (method, length) once per seed, seeds innermost; every row holds its ``seed``, and
    :mod:`harness.tasks.recall_summary` turns the rows into means with intervals."""
    if seeds is not None and "seed" in settings:
        raise ValueError("give seeds or seed, not both")
    merged = {**DEFAULTS, **settings}
    seed_list = [merged["seed"]] if seeds is None else list(seeds)
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be distinct ints, at least one, got {seeds!r}")
    merged["seed"] = seed_list[0]
    for length in lengths:  # bad task settings fail before any training
        for seed in seed_list:
            make_mqar(1, length, merged["num_pairs"], merged["vocab_size"], seed)
    head_dim = merged["dim"] // merged["heads"]
    rows: list[dict[str, Any]] = []
    for method in methods:
        name = method.name if isinstance(method, (MethodSpec, LayerMethod)) else str(method)
        spec: Method | None = None
        reason = error = None
        try:
            spec = _spec(method)
            reason = skip_reason(spec, head_dim=head_dim)
        except Exception as exc:  # unknown name, broken plugin: an error row
            error = f"{type(exc).__name__}: {exc}"
        for length in lengths:
            for seed in seed_list:
                rows.append(
                    _grid_row(method, name, spec, length, seed, error, reason, runner, settings)
                )
                if output is not None:
                    write_json_atomic(
                        output,
                        {
                            "task": "mqar",
                            "settings": merged,
                            "lengths": list(lengths),
                            "seeds": seed_list,
                            "rows": rows,
                        },
                    )
                if progress is not None:
                    progress(rows[-1])
    return rows


def _grid_row(
    method: str | Method,
    name: str,
    spec: Method | None,
    length: int,
    seed: int,
    error: str | None,
    reason: str | None,
    runner: Any,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """One row of :func:`run_grid` (its docstring): trained, skipped or an error."""
    settings = {**settings, "seed": seed}
    row: dict[str, Any] = {"method": name, "length": length, "seed": seed}
    if error is not None:
        row |= {"status": "error", "error": error}
    elif reason is not None:
        row |= {"status": "skipped", "reason": reason}
    elif runner is not None:
        # a name travels to the worker, which resolves it itself (a spec's factory
        # may not pickle); a spec given as an object is sent as it is
        target = method if isinstance(method, str) else spec
        outcome = runner.call(train_and_evaluate, target, length, **settings)
        if outcome.ok:
            row |= {"status": "ok", **outcome.value}
        else:  # raised, hung, aborted or ran out of memory in the worker
            row |= {"status": outcome.status, "error": outcome.message}
    else:
        try:
            row |= {"status": "ok", **train_and_evaluate(spec, length, **settings)}
        except Exception as exc:  # a method that raises is a row, not a crash
            row |= {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return row


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Accuracy by L: one line per method, one column per length; "skip" / "error" where
    the row is not ok, with the reasons listed below the table. Rows of several seeds per
    (method, L) give :func:`harness.tasks.recall_summary.format_summary`'s tables (means
    with intervals, paired differences to sdpa) above those reasons."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lengths = list(dict.fromkeys(r["length"] for r in rows))
    cell = {(r["method"], r["length"]): r for r in rows}
    notes: dict[str, str] = {}  # each method's first row that is not ok
    for r in rows:
        if r["status"] != "ok":
            notes.setdefault(r["method"], f"{r['status']}: {r.get('reason') or r.get('error')}")
    reasons = [f"  {m}: {note}" for m, note in notes.items()]
    if len(cell) < len(rows):  # several seeds
        from harness.tasks.recall_summary import format_summary, summarise

        return "\n".join([format_summary(summarise(rows)), *reasons])
    width = max([len("method"), *(len(m) for m in methods)])
    lines = ["method".ljust(width) + "".join(f"{'L=' + str(n):>10}" for n in lengths)]
    for m in methods:
        out = m.ljust(width)
        for n in lengths:
            r = cell.get((m, n))
            if r is None:
                text = "-"
            elif r["status"] == "ok":
                text = f"{r['accuracy']:.3f}"
            else:
                text = {"skipped": "skip", "error": "error"}.get(r["status"], r["status"])
            out += f"{text:>10}"
        lines.append(out)
    return "\n".join(lines + reasons)
