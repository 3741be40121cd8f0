"""Result files: machine fingerprint, config hash and atomic JSON writes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

__all__ = [
    "machine_fingerprint",
    "source_revision",
    "config_hash",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


# Environment variables that change what a timing or a peak means: thread counts, and the
# allocator (THP_MEM_ALLOC_ENABLE=1 makes torch back large CPU tensors with transparent
# huge pages, which removes most page-fault time from writing a fresh output; see
# docs/roofline.md). Recorded with every result when set.
TIMING_ENVIRONMENT = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "THP_MEM_ALLOC_ENABLE",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "LD_PRELOAD",
)


def machine_fingerprint() -> dict:
    """What the numbers were measured on: CPU/GPU, threads, library versions, and the
    timing-relevant environment variables that are set (``TIMING_ENVIRONMENT``)."""
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "environment": {
            name: os.environ[name] for name in TIMING_ENVIRONMENT if name in os.environ
        },
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return info


def source_revision() -> dict:
    """Which code produced a result: ``{"version", "commit", "dirty"}``. ``version`` is the
    installed lisa-bench distribution's (None if not installed); ``commit`` the git HEAD of
    the checkout the ``harness`` package is imported from and ``dirty`` whether that
    checkout has uncommitted changes (both None outside a git checkout, or without git)."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("lisa-bench")
    except importlib.metadata.PackageNotFoundError:
        version = None
    root = Path(__file__).resolve().parents[1]
    commit = dirty = None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if head.returncode == 0:
            commit = head.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": version, "commit": commit, "dirty": dirty}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def config_hash(config: dict) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic
    rename, so a crash never leaves a truncated file behind. The file gets the usual mode
    (0666 less the umask; mkstemp alone would leave it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_bytes_atomic` of ``text`` in UTF-8."""
    return write_bytes_atomic(path, text.encode("utf-8"))


_NONFINITE_KEY = "nonfinite_as_null"


def _null_nonfinite(value, path: str, found: dict[str, str]):
    """``value`` with each non-finite float replaced by None (in new containers), its
    JSON path and what it was recorded in ``found``."""
    if isinstance(value, float) and not math.isfinite(value):
        found[path] = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return None
    if isinstance(value, dict):
        return {k: _null_nonfinite(v, f"{path}.{k}", found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_null_nonfinite(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def write_json_atomic(path: str | os.PathLike, payload: dict) -> Path:
    """:func:`write_bytes_atomic` of ``payload`` as indented, standard JSON. The payload is
    serialised first, so a payload that cannot be serialised leaves ``path`` untouched.

    Standard JSON has no NaN or infinity: each non-finite float is written as null, and a
    dict payload gets a ``nonfinite_as_null`` entry mapping the JSON path of each such
    value to what it was (``"NaN"``, ``"Infinity"``, ``"-Infinity"``), so a reader can
    tell a missing value from a non-finite one. The file never holds a bare ``NaN``."""
    found: dict[str, str] = {}
    clean = _null_nonfinite(payload, "$", found)
    if found and isinstance(clean, dict):
        earlier = clean.get(_NONFINITE_KEY)
        clean[_NONFINITE_KEY] = {**(earlier if isinstance(earlier, dict) else {}), **found}
    text = json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return write_text_atomic(path, text)
