"""The dataset store: ``<data>/<name>/<version>/`` folders, a ``latest`` pointer, and the build caches.

Layout::

    data/<name>/<version>/train.parquet, test.parquet, manifest.json, README.md (the card)
    data/<name>/<version>/quarantine/<source>.jsonl     (records a source skipped; never pushed)
    data/<name>/latest                                  (text: the newest version id)
    data/.cache/sources/<key>.*, data/.cache/steps/<key>.*    (step-level cache, gc removes unused)
    data/.cache/work/<key>/                             (what resumable steps have done; gc keeps it)

A version is built in a staging folder beside its final place and renamed into it, so a crash never leaves
a half-written version; a per-dataset file lock serialises builds of one recipe.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from datafactory.errors import StoreError, did_you_mean

STAGING_PREFIX = ".tmp-"


def write_atomic(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, "utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.cache = self.root / ".cache"

    # -- datasets and versions --------------------------------------------------------------------
    def dataset_dir(self, name: str) -> Path:
        return self.root / name

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def has(self, name: str, version: str) -> bool:
        return (self.version_dir(name, version) / "manifest.json").exists()

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
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and self.versions(p.name))

    def versions(self, name: str) -> list[str]:
        """Built versions, oldest first."""
        d = self.dataset_dir(name)
        if not d.is_dir():
            return []
        found = [(self.manifest(name, p.name).get("created_at", ""), p.name) for p in d.iterdir()
                 if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists()]
        return [v for _, v in sorted(found)]

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

    def staging(self, name: str) -> Path:
        d = self.dataset_dir(name) / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        d.mkdir(parents=True)
        return d

    def publish(self, staging: Path, name: str, version: str) -> Path:
        final = self.version_dir(name, version)
        if final.exists():  # built meanwhile by someone who did not hold our lock: theirs stands
            shutil.rmtree(staging)
        else:
            os.rename(staging, final)
        self.set_latest(name, version)
        return final

    def cache_path(self, kind: str, key: str, suffix: str) -> Path:
        return self.cache / kind / f"{key}{suffix}"

    def work_dir(self, key: str) -> Path:
        return self.cache / "work" / key

    # -- gc -----------------------------------------------------------------------------------------
    def gc(self, keep: int = 1, dry_run: bool = False) -> list[Path]:
        """Remove all but the ``keep`` newest versions of each dataset (the latest always stays), staging
        folders left by killed builds, and cache entries no kept version refers to. Work folders of
        resumable steps are kept: they may hold paid work.

        Each dataset is cleaned under its build lock; a dataset being built is left alone, and then the
        cache is not swept either (the running build's entries are in no manifest yet)."""
        started = time.time()
        removed: list[Path] = []
        kept_keys: set[str] = set()
        busy = False
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if self.root.is_dir() else []
        for name in names:
            lock = FileLock(str(self.dataset_dir(name) / ".lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                busy = True
                continue
            try:
                versions = self.versions(name)
                keep_set = set(versions[-keep:]) if keep > 0 else set()
                latest = self.latest(name)
                if latest:
                    keep_set.add(latest)
                old = [self.version_dir(name, v) for v in versions if v not in keep_set]
                for v in keep_set:
                    kept_keys.update(self.manifest(name, v).get("cache_keys", []))
                doomed = old + list(self.dataset_dir(name).glob(f"{STAGING_PREFIX}*"))
                if not dry_run:
                    for p in doomed:
                        shutil.rmtree(p, ignore_errors=True)
                removed += doomed
            finally:
                lock.release()
        if not busy:
            for kind in ("sources", "steps"):
                d = self.cache / kind
                if d.is_dir():
                    doomed = [p for p in d.iterdir()
                              if p.name.lstrip(".").split(".")[0] not in kept_keys and p.stat().st_mtime < started]
                    if not dry_run:
                        for p in doomed:
                            p.unlink(missing_ok=True)
                    removed += doomed
        return removed
