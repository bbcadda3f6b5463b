"""The dataset store: ``<data>/<name>/<version>/`` folders, a ``latest`` pointer, and the build caches.

Layout::

    data/<name>/<version>/train.parquet, test.parquet, manifest.json, README.md (the card)
    data/<name>/<version>/quarantine/<source>.jsonl     (records a source skipped; never pushed)
    data/<name>/latest                                  (text: the newest version id)
    data/<name>/pins.json                               (versions `gc` must keep: pinned by hand or by a trainer)
    data/.cache/sources/<key>.*, data/.cache/steps/<key>.*    (step-level cache, gc removes unused)
    data/.cache/work/<key>/                             (what resumable steps have done; gc keeps it)
    data/.llm/responses.sqlite3                         (every LLM answer paid for; gc never touches it)
    data/.labels/labels.sqlite3                         (human preference labels, datafactory/labels.py; nor this)

A version is built in a staging folder beside its final place and renamed into it, so a crash never leaves
a half-written version; a per-dataset file lock serialises builds of one recipe.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from datafactory.errors import StoreError, did_you_mean

STAGING_PREFIX = ".tmp-"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a recipe's, a source's and so a dataset's name
DEFAULT_KEEP = 3  # versions of each dataset `gc` keeps besides the pinned ones


def hub_arrow_type(t):
    """Arrow's 32-bit-offset types for polars' 64-bit ones (large_string -> string, large_list -> list), so
    `datasets` sees the plain ``Value('string')`` / ``List(...)`` features users expect."""
    import pyarrow as pa

    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(hub_arrow_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, hub_arrow_type(f.type), f.nullable) for f in t])
    return t


class Background:
    """Calls run in threads; ``join`` waits for all and raises the first error."""

    def __init__(self, calls: list):
        import threading

        self.errors: list[BaseException] = []

        def run(fn, args):
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 - raised again by join()
                self.errors.append(e)

        self.threads = [threading.Thread(target=run, args=call) for call in calls]
        for t in self.threads:
            t.start()

    def join(self, raise_errors: bool = True) -> None:
        for t in self.threads:
            t.join()
        if raise_errors and self.errors:
            raise self.errors[0]


def dictionary_columns(frame) -> list[str]:
    """The columns worth parquet's dictionary encoding: those whose first 10,000 values repeat (source, topic,
    split...). On free text (prompts, answers) the writer builds a dictionary per row group and throws it away:
    a third of its time."""
    import polars as pl

    head = frame.head(10_000)
    return [c for c in frame.columns if head[c].dtype != pl.String or head[c].n_unique() <= head.height // 2]


def write_splits(body, split, paths: dict, group_rows: int = 32_768) -> None:
    """The split files: parquet with the plain Arrow types (``hub_arrow_type``), from the whole table and the split
    of each row (``None``: one split), one row group of ``group_rows`` rows at a time, gathered by row number: no
    copy of a split, nor of its Arrow form, is ever whole in memory, and the per-row-group work is polars' and
    pyarrow's (without the GIL: the card and the plot are drawn meanwhile)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(f.name, hub_arrow_type(f.type), f.nullable) for f in body.head(0).to_arrow().schema])
    dictionary = dictionary_columns(body)
    # min/max statistics only where a reader can use them: a text column's are its extreme texts (whole prompts in
    # the footer), and cost a sixth of the writing
    stats = [f.name for f in schema if not pa.types.is_string(f.type)]
    writers = {s: pq.ParquetWriter(p, schema, use_dictionary=dictionary, write_statistics=stats) for s, p in paths.items()}
    try:
        for s, writer in writers.items():
            rows = None if split is None else (split == s).arg_true()
            for offset in range(0, body.height if rows is None else len(rows), group_rows):
                part = body.slice(offset, group_rows) if rows is None else body[rows.slice(offset, group_rows)]
                writer.write_table(part.to_arrow().cast(schema))
    finally:
        for w in writers.values():
            w.close()


class Parts:
    """A table written as numbered parquet parts in a folder, each by the process that made its rows, and read back
    in order with only the ``columns`` wanted (``None``: all). A source's worker processes write their chunks here:
    the rows never travel back through a pipe (pickled with all 13 columns of 100k NIKL files' rows, then converted
    and written again by the main process: its CPU during the parse 2.1 -> 1.3 s). The folder, renamed into place,
    is the source's cache entry."""

    def __init__(self, folder: Path, columns: set[str] | None = None):
        self.folder, self.columns = folder, columns

    def write(self, frame, index: int) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{index:06d}.parquet"
        write_parquet_atomic(frame, self.folder / name, compression="lz4")
        return name

    def read(self, names: list[str]):
        return read_entry([self.folder / n for n in sorted(names)], self.columns)


def entry_files(path: Path) -> list[Path]:
    """The parquet files of a cache entry: the file itself, or a folder's parts in order (a part a killed worker
    left half-written, hidden under a temporary name, is not one of them)."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix == ".parquet" and not p.name.startswith("."))


def read_entry(path: Path | list[Path], columns: set[str] | None = None):
    """A cache entry's table (``entry_files``, or those files), with only ``columns`` where given."""
    import polars as pl

    files = path if isinstance(path, list) else entry_files(path)
    wanted = None if columns is None else [c for c in pl.read_parquet_schema(files[0]) if c in columns]
    return pl.read_parquet(files, columns=wanted)


def remove(path: Path) -> None:
    """A cache entry, a file or (a source's parts) a folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def open_sqlite(path: Path, schema: str, what: str):
    """A durable SQLite store (the LLM responses, the human labels): WAL, a fsync per commit (``synchronous=FULL``),
    autocommit (one statement, one transaction, unless a caller says BEGIN), shared between threads and processes.
    ``what`` names it in the error, which says never to delete it."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        db.executescript(schema)
        return db
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: {what} cannot be opened ({e}); move it aside rather than deleting it, and report "
                         "the error") from None


class StoreFull(StoreError):
    """A SQLite store (responses, labels) cannot write: the disk is full, over quota or failing."""


def sqlite_write_error(e: BaseException, what: str) -> BaseException:
    """``e`` as one line a user can act on where SQLite could not write for want of disk (SQLITE_FULL, an I/O
    error), else ``e`` itself."""
    import sqlite3

    name = getattr(e, "sqlite_errorname", "") or ""
    if isinstance(e, sqlite3.OperationalError) and (name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or
                                                    "full" in str(e) or "disk I/O" in str(e)):
        return StoreFull(f"{what} cannot write ({e}): the disk is full or failing; free some space and run the same "
                         "command again (everything it held before is kept)")
    return e


@contextmanager
def transaction(db, what: str):
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; on an error, a rollback that cannot hide it (a COMMIT that failed for a
    full disk has ended the transaction already, and ROLLBACK then said only "cannot rollback"), and a full disk
    said as such (``StoreFull``)."""
    import sqlite3

    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("COMMIT")
    except BaseException as e:
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        err = sqlite_write_error(e, what)
        if err is e:
            raise
        raise err from None


def write_atomic(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, "utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def write_parquet_atomic(frame, path: Path, **options) -> None:
    """A polars frame as a parquet file that appears whole or not at all (written beside it, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)  # a step's table may be the first thing a new data folder gets
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        frame.write_parquet(tmp, **options)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.cache = self.root / ".cache"
        self.responses = self.root / ".llm" / "responses.sqlite3"  # the LLM response store (datafactory/llm/store.py)
        self.labels = self.root / ".labels" / "labels.sqlite3"  # human labels (datafactory/labels.py)

    # -- datasets and versions --------------------------------------------------------------------
    def dataset_dir(self, name: str) -> Path:
        return self.root / name

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def has(self, name: str, version: str) -> bool:
        return (self.version_dir(name, version) / "manifest.json").exists()

    def damage(self, name: str, version: str, manifest: dict | None = None) -> str | None:
        """What is wrong with a built version's split files (one deleted, or cut short: its size is not the one the
        manifest recorded), or None. A stat per file: cheap enough for every use of a version."""
        m = manifest if manifest is not None else self.manifest(name, version)
        folder = self.version_dir(name, version)
        sizes = m.get("file_bytes") or {}
        for f in m.get("files", {}).values():
            try:
                size = (folder / f).stat().st_size
            except FileNotFoundError:
                return f"{f} is missing"
            if f in sizes and size != sizes[f]:
                return f"{f} has {size:,} of its {sizes[f]:,} bytes"
        return None

    def check(self, name: str, version: str, manifest: dict | None = None) -> dict:
        """The version's manifest, or a StoreError saying it is damaged and how to make it again."""
        m = manifest if manifest is not None else self.manifest(name, version)
        why = self.damage(name, version, m)
        if why:
            raise StoreError(f"{name}@{version} is damaged: {why} (deleted or cut short since it was built); run "
                             f"`datafactory build {name}` to make it again from the cache")
        return m

    def latest(self, name: str) -> str | None:
        try:
            v = (self.dataset_dir(name) / "latest").read_text("utf-8").strip()
        except FileNotFoundError:
            return None
        return v if self.has(name, v) else None

    def set_latest(self, name: str, version: str) -> None:
        if self.latest(name) != version:
            write_atomic(self.dataset_dir(name) / "latest", version + "\n")

    def datasets(self) -> list[str]:
        return [n for n in self._dataset_dirs() if self.versions(n)]

    def versions(self, name: str) -> list[str]:
        """Built versions, oldest first (none for what is not a dataset's name: "", "../x")."""
        d = self.dataset_dir(name)
        if not NAME_RE.match(name) or not d.is_dir():
            return []
        found = [(self.manifest(name, p.name).get("created_at", ""), p.name) for p in d.iterdir()
                 if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists()]
        return [v for _, v in sorted(found)]

    def _dataset_dirs(self) -> list[str]:
        """Folders that hold a dataset (a version, a `latest` pointer or a build's staging folder); the store
        root may hold other folders (the shipped ``samples/``), which nothing here touches."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".") and (
            (p / "latest").exists() or any(c.is_dir() and ((c / "manifest.json").exists() or c.name.startswith(STAGING_PREFIX))
                                          for c in p.iterdir())))

    # -- pins ---------------------------------------------------------------------------------------
    def pins(self, name: str) -> dict[str, list[dict]]:
        """version -> who pinned it (``note``, ``at``). ``gc`` never removes a pinned version."""
        try:
            return json.loads((self.dataset_dir(name) / "pins.json").read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise StoreError(f"{self.dataset_dir(name) / 'pins.json'}: unreadable ({e}); fix or delete it") from None

    def pin(self, ref: str, note: str = "") -> tuple[str, str]:
        """Keep ``name@version`` through every ``gc`` (a model was trained on it). Pinning twice with the
        same note is a no-op."""
        name, version = self.resolve(ref)
        with FileLock(str(self.dataset_dir(name) / ".pins.lock")):
            pins = self.pins(name)
            entries = pins.setdefault(version, [])
            if not any(e.get("note") == note for e in entries):
                entries.append({"note": note, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
                write_atomic(self.dataset_dir(name) / "pins.json", json.dumps(pins, ensure_ascii=False, indent=2))
        return name, version

    def unpin(self, ref: str, note: str | None = None) -> int:
        """Remove the pins of ``name@version`` (only those with ``note`` when given); returns how many."""
        name, version = self.resolve(ref)
        with FileLock(str(self.dataset_dir(name) / ".pins.lock")):
            pins = self.pins(name)
            before = pins.get(version, [])
            after = [e for e in before if note is not None and e.get("note") != note]
            if after:
                pins[version] = after
            else:
                pins.pop(version, None)
            if len(after) != len(before):
                write_atomic(self.dataset_dir(name) / "pins.json", json.dumps(pins, ensure_ascii=False, indent=2))
        return len(before) - len(after)

    def manifest(self, name: str, version: str) -> dict:
        path = self.version_dir(name, version) / "manifest.json"
        try:
            return json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{name}@{version} is not in the store ({self.root})") from None
        except ValueError as e:
            raise StoreError(f"{path}: unreadable manifest ({e}); delete the folder and build again") from None

    def resolve(self, ref: str) -> tuple[str, str]:
        """'name' (latest) or 'name@version' (a unique prefix is enough) -> (name, version)."""
        name, _, version = ref.partition("@")
        if not NAME_RE.match(name):  # "", "@abc", "../x": not a dataset's name (nor a path out of the store)
            raise StoreError(f"'{ref}' is not NAME or NAME@VERSION (a dataset name: letters, digits, '.', '_', '-')")
        versions = self.versions(name)
        if not versions:
            hint = did_you_mean(name, self.datasets())
            raise StoreError(f"no built dataset named '{name}' in {self.root}; "
                             + (hint if hint else f"run `datafactory build {name}`"))
        if not version:
            latest = self.latest(name)
            return name, latest or versions[-1]
        hits = [v for v in versions if v.startswith(version)]
        if len(hits) != 1:
            what = "matches several versions" if hits else "matches no version"
            raise StoreError(f"{ref}: '{version}' {what} of {name} (versions: {', '.join(versions)})")
        return name, hits[0]

    # -- building -----------------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, on_wait=None):
        self.dataset_dir(name).mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.dataset_dir(name) / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def running(self):
        """Held for a whole build (its sources' parse included, before any dataset lock is taken): ``gc`` sweeps no
        cache entry while one is held, since a running build's entries are in no manifest yet. A lock file each,
        in ``.cache/running/``; a killed build's file, held by no process, is removed by the next ``gc``."""
        folder = self.cache / "running"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.lock"
        lock = FileLock(str(path))
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
            path.unlink(missing_ok=True)

    def builds_running(self, dry_run: bool = False) -> bool:
        """Whether a build holds one of the ``running`` locks (a file no process holds is a killed build's: gone)."""
        folder = self.cache / "running"
        busy = False
        for path in folder.glob("*.lock") if folder.is_dir() else []:
            lock = FileLock(str(path))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                busy = True
                continue
            try:
                if not dry_run:
                    path.unlink(missing_ok=True)
            finally:
                lock.release()
        return busy

    def staging(self, name: str) -> Path:
        d = self.dataset_dir(name) / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        d.mkdir(parents=True)
        return d

    def publish(self, staging: Path, name: str, version: str) -> Path:
        final = self.version_dir(name, version)
        if final.exists() and self.has(name, version) and not self.damage(name, version):
            shutil.rmtree(staging)  # built meanwhile by someone who did not hold our lock: theirs stands
        else:
            if final.exists():  # a damaged copy (a split file deleted or cut short): the new one replaces it
                aside = final.with_name(f".{version}.damaged.{uuid.uuid4().hex[:8]}")
                os.rename(final, aside)
                os.rename(staging, final)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(staging, final)
        self.set_latest(name, version)
        return final

    def cache_path(self, kind: str, key: str, suffix: str) -> Path:
        return self.cache / kind / f"{key}{suffix}"

    def work_dir(self, key: str) -> Path:
        return self.cache / "work" / key

    # -- gc -----------------------------------------------------------------------------------------
    def gc(self, keep: int = DEFAULT_KEEP, dry_run: bool = False) -> list[Path]:
        """Remove all but the ``keep`` newest versions of each dataset (the latest and every pinned version
        always stay), staging folders left by killed builds, and cache entries no kept version refers to.
        Work folders of resumable steps are kept: they may hold paid work.

        Each dataset is cleaned under its build lock; a dataset being built is left alone, and then the
        cache is not swept either (the running build's entries are in no manifest yet). ``dry_run`` writes
        nothing anywhere, not even a lock file."""
        started = time.time()
        removed: list[Path] = []
        kept_keys: set[str] = set()
        busy = False
        for name in self._dataset_dirs():
            path = self.dataset_dir(name) / ".lock"
            lock = FileLock(str(path)) if path.exists() or not dry_run else None
            try:
                if lock is not None:
                    lock.acquire(timeout=0)
            except Timeout:
                busy = True
                continue
            try:
                versions = self.versions(name)
                keep_set = set(versions[-keep:]) if keep > 0 else set()
                keep_set |= set(self.pins(name)) & set(versions)
                latest = self.latest(name)
                if latest:
                    keep_set.add(latest)
                old = [self.version_dir(name, v) for v in versions if v not in keep_set]
                for v in keep_set:
                    kept_keys.update(self.manifest(name, v).get("cache_keys", []))
                doomed = old + sorted(self.dataset_dir(name).glob(f"{STAGING_PREFIX}*"))
                if not dry_run:
                    for p in doomed:
                        shutil.rmtree(p, ignore_errors=True)
                removed += doomed
            finally:
                if lock is not None:
                    lock.release()
        if not busy and not self.builds_running(dry_run):  # a first build parsing has no dataset lock yet
            for kind in ("sources", "steps"):
                d = self.cache / kind
                if d.is_dir():
                    doomed = [p for p in d.iterdir()
                              if p.name.lstrip(".").split(".")[0] not in kept_keys and p.stat().st_mtime < started]
                    if not dry_run:
                        for p in doomed:
                            remove(p)
                    removed += doomed
        return removed
