"""Content hashing: canonical JSON digests for version ids, file digests, and stable per-row hashes.

Stable means stable across machines and library versions, so polars' own hash (stable only within one
polars version) is not used for anything that decides a split or a sample.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

VERSION_LEN = 12


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def digest(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``, hex."""
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def unit_hashes(keys: list[str], seed: int | str) -> list[float]:
    """Map each key to a number in [0, 1) that depends only on the key and the seed."""
    salt = f"{seed}\x1f".encode("utf-8")
    out = []
    for key in keys:
        h = hashlib.blake2b(salt + key.encode("utf-8"), digest_size=8).digest()
        out.append(int.from_bytes(h, "big") / 2**64)
    return out


class FingerprintCache:
    """Remembers file digests by (path, size, mtime) so an unchanged corpus is not re-read on every build.

    This is what makes a no-op ``build`` fast on large inputs; the digest itself is of the content, so the
    same bytes elsewhere give the same version id.
    """

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, dict] | None = None
        self._dirty = False

    def _load(self) -> dict[str, dict]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text("utf-8"))
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def digest(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        entry = self._load().get(key)
        if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
            return entry["digest"]
        d = file_digest(file)
        self._load()[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "digest": d}
        self._dirty = True
        return d

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._data, ensure_ascii=False), "utf-8")
        os.replace(tmp, self.path)
        self._dirty = False


@functools.lru_cache(maxsize=None)
def code_version(cls: type) -> str:
    """The class's declared version plus the source of every module its class hierarchy comes from."""
    mods = dict.fromkeys(inspect.getmodule(c) for c in cls.__mro__ if c is not object)
    texts = [inspect.getsource(m) for m in mods if m is not None]
    return digest(getattr(cls, "version", 1), texts)[:VERSION_LEN]
