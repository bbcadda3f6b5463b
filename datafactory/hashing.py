"""Content hashing: canonical JSON digests for version ids, file digests, and stable per-row hashes.

Stable means stable across machines and library versions, so polars' own hash (stable only within one
polars version) is not used for anything that decides a split or a sample: rows are ranked by XXH3-64, a
specified hash (polars-hash computes it over a whole column; tests check it against the xxhash reference).
Files are hashed with XXH3-128 (fast, not cryptographic: it tells changed inputs apart, it guards nothing).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import xxhash

VERSION_LEN = 12


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def digest(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``, hex."""
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()


def digest_with_messages(before: list, messages: list, after: list) -> str:
    """``digest(*before, messages, *after)``, faster where ``messages`` is chat messages of text (dicts of str to
    str): msgspec writes their JSON, the bytes ``canonical_json`` gives (keys sorted, text unescaped but for what JSON
    must escape; tests/test_engine.py compares them on every character class), in half the time; a request key per
    prompt is most of what ``plan`` does per request. Anything else goes through ``digest``."""
    import msgspec

    if type(messages) is not list or not all(type(m) is dict and all(type(k) is str and type(v) is str
                                                                      for k, v in m.items()) for m in messages):
        return digest(*before, messages, *after)
    head, tail = _canonical_memo(before)[:-1], _canonical_memo(after)[1:]  # '["a","b"' and '{"c":1},2]'
    body = msgspec.json.encode(messages, order="sorted")
    return hashlib.sha256(head.encode("utf-8") + (b"," if before else b"") + body + (b"," if after else b"")
                          + tail.encode("utf-8")).hexdigest()


_MEMO: dict = {}


def _frozen(obj: Any):
    """``obj`` as a hashable value that tells apart what JSON writes differently (1, 1.0 and True are equal in
    Python), or None where it holds anything but text, numbers, bools, None, lists and dicts."""
    kind = type(obj)
    if kind in (str, int, float, bool) or obj is None:
        return (kind, obj)
    if kind in (list, tuple):
        items = tuple(_frozen(x) for x in obj)
        return None if None in items else (list, items)
    if kind is dict and all(type(k) is str for k in obj):
        items = tuple(sorted((k, _frozen(v)) for k, v in obj.items()))
        return None if any(v is None for _, v in items) else (dict, items)
    return None


def _canonical_memo(obj: Any) -> str:
    """``canonical_json(obj)``, remembered for the few values every request of a step shares (role, model, sampling)."""
    key = _frozen(obj)
    if key is None:
        return canonical_json(obj)
    got = _MEMO.get(key)
    if got is None:
        if len(_MEMO) > 1024:
            _MEMO.clear()
        got = _MEMO[key] = canonical_json(obj)
    return got


def file_digest(path: Path | str, chunk: int = 1 << 22) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def unit_hash_expr(key, seed: int | str):
    """A polars expression: each value of ``key`` (an expression or column name) mapped to a number in [0, 1)
    that depends only on the value and the seed: XXH3-64 of ``seed + "\\x1f" + value``, top 53 bits."""
    import polars as pl
    import polars_hash as plh

    expr = pl.col(key) if isinstance(key, str) else key
    hashed = plh.concat_str(pl.lit(f"{seed}\x1f"), expr.cast(pl.String)).nchash.xxh3_64()
    return (hashed // (1 << 11)).cast(pl.Float64) / float(1 << 53)


def unit_hashes(keys: list[str], seed: int | str) -> list[float]:
    """``unit_hash_expr`` for a list of keys, computed one by one with the xxhash reference implementation."""
    salt = f"{seed}\x1f".encode("utf-8")
    return [(xxhash.xxh3_64_intdigest(salt + key.encode("utf-8")) >> 11) / float(1 << 53) for key in keys]


def first_repeated(values):
    """The first value of a polars Series that occurs more than once in it, or None. Distinct 64-bit hashes
    prove distinct values (822k ids: 16 against 103 ms for comparing the values); only where hashes repeat are the
    values compared. polars' own hash is fine here: it decides nothing that is kept."""
    if values.hash().n_unique() == values.len():
        return None
    repeated = values.filter(values.is_duplicated())
    return repeated[0] if len(repeated) else None
