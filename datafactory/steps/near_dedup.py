"""near_dedup: near-duplicate removal by MinHash LSH over character shingles, keeping the first row of each cluster.

Exact ``dedup`` misses the near copies real corpora are full of: the same turn with other spacing, a changed
particle, a pseudonym replaced. Korean spacing is inconsistent, so by default whitespace is dropped before the text
is cut into shingles of ``shingle`` characters (3 syllables catch a changed particle without matching unrelated
sentences that share common words).

How, all vectorised (polars for the shingles, numpy for the rest; no Python loop per row):

- every shingle is hashed with XXH3-64 (stable across machines and library versions); ``num_perm`` hash
  functions ``(a * x + b) >> 32`` (multiply-shift, 64-bit) give each row its MinHash signature;
- LSH: the signature is cut into ``bands`` bands (by default the number that best balances missed and false
  pairs at ``threshold``, as ``datasketch`` chooses it); rows sharing a band are candidates;
- a candidate pair counts only when its signatures agree on at least ``threshold`` of the positions (the
  estimated Jaccard similarity), so LSH's chance collisions are not dropped;
- pairs join rows into clusters (transitively: A~B and B~C put A, B and C together); the first row of a cluster
  (in the frame's order) is kept, the others are dropped and counted as ``near_duplicate``.

Every dropped row is recorded with its kept twin and their estimated similarity in the version's
``tables/<name>.parquet`` (``id``, ``kept_id``, ``similarity``); the manifest's step record says how many and where.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from pydantic import Field, model_validator

if TYPE_CHECKING:
    import numpy as np

from datafactory.steps.base import (
    BOOKKEEPING,
    Params,
    Step,
    StepContext,
    StepError,
    require_columns,
)


class NearDedupParams(Params):
    columns: list[str] | None = None  # compared together (joined by a newline); default: every text column
    threshold: float = Field(0.8, gt=0.0, lt=1.0)  # estimated Jaccard similarity at which rows are near duplicates
    shingle: int = Field(3, ge=1, le=32)  # characters per shingle
    num_perm: int = Field(128, ge=8, le=1024)  # hash functions in a signature: more is more exact and slower
    bands: int | None = Field(None, ge=1)  # LSH bands; default: the best for the threshold
    ignore_space: bool = True  # compare without whitespace (Korean spacing varies)
    table: str = "near_duplicates"  # the name of the dropped-rows table beside the dataset

    @model_validator(mode="after")
    def _bands_fit(self):
        if self.bands is not None and self.bands > self.num_perm:
            raise ValueError(f"bands ({self.bands}) cannot exceed num_perm ({self.num_perm})")
        return self


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising the equally weighted chances of a false pair (similarity below the
    threshold, yet a shared band) and a missed one (above it, no shared band): datasketch's ``_optimal_param``."""
    import numpy as np

    integrate = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it
    best, best_err = (1, num_perm), float("inf")
    lo, hi = np.linspace(0.0, threshold, 201), np.linspace(threshold, 1.0, 201)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = integrate(1 - (1 - lo ** r) ** b, lo)
            fn = integrate((1 - hi ** r) ** b, hi)
            if 0.5 * fp + 0.5 * fn < best_err:
                best, best_err = (b, r), 0.5 * fp + 0.5 * fn
    return best


def _coefficients(n: int, tag: str) -> np.ndarray:
    """``n`` fixed 64-bit odd numbers, the same everywhere (XXH3 of a name: no random generator's stream)."""
    import numpy as np
    import xxhash

    return np.array([xxhash.xxh3_64_intdigest(f"datafactory-minhash-{tag}-{i}".encode()) | 1 for i in range(n)],
                    dtype=np.uint64)


def signatures(texts: pl.Series, shingle: int, num_perm: int, block_rows: int = 8192, tile_rows: int = 256) -> np.ndarray:
    """The MinHash signature of each text (rows x ``num_perm``, uint32). An empty text gets the signature of
    its one empty shingle (so empty texts match each other, as exact dedup would have it). Shingles are hashed
    ``block_rows`` texts at a time; the hash functions run on tiles of ``tile_rows`` texts x 32 functions, which
    stay in the CPU cache (5x faster than whole blocks)."""
    import numpy as np
    import polars_hash  # noqa: F401  (registers the `nchash` namespace: XXH3 over a column)

    a, b = _coefficients(num_perm, "a"), _coefficients(num_perm, "b")
    shift = np.uint64(32)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for start in range(0, len(texts), block_rows):
        part = texts.slice(start, block_rows)
        sh = (pl.DataFrame({"t": part}).with_row_index("row")
              .with_columns(pl.int_ranges(0, pl.max_horizontal(pl.col("t").str.len_chars().cast(pl.Int64) - shingle + 1, 1)).alias("o"))
              .explode("o")
              .select("row", pl.col("t").str.slice(pl.col("o"), shingle).nchash.xxh3_64().alias("h")))
        rows, hashes = sh["row"].to_numpy(), sh["h"].to_numpy()
        bounds = np.searchsorted(rows, np.arange(0, len(part) + tile_rows, tile_rows))
        with np.errstate(over="ignore"):
            for t in range(len(bounds) - 1):
                lo, hi = bounds[t], bounds[t + 1]
                if lo == hi:
                    continue
                r, h = rows[lo:hi], hashes[lo:hi, None]
                starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
                first = start + int(r[0])
                for k in range(0, num_perm, 32):
                    v = h * a[None, k:k + 32]
                    v += b[None, k:k + 32]
                    v >>= shift
                    out[first:first + len(starts), k:k + 32] = np.minimum.reduceat(v, starts, axis=0)
    return out


def candidate_pairs(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Pairs (i, j), i < j, that share at least one band: within a band's bucket each row is paired with the
    bucket's first row (that is enough to connect a cluster)."""
    import numpy as np

    mult = _coefficients(rows, "band")
    pairs = []
    with np.errstate(over="ignore"):
        for band in range(bands):
            cols = sig[:, band * rows:(band + 1) * rows].astype(np.uint64)
            key = (cols * mult[None, :]).sum(axis=1, dtype=np.uint64) ^ np.uint64(band)
            order = np.argsort(key, kind="stable")  # members of a bucket in row order
            k = key[order]
            first = np.r_[True, k[1:] != k[:-1]]
            head = order[np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))]
            dup = ~first
            if dup.any():
                pairs.append(np.stack([head[dup], order[dup]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


def similarity(sig: np.ndarray, i: np.ndarray, j: np.ndarray, block: int = 65536) -> np.ndarray:
    """Estimated Jaccard similarity of rows i and j: the share of signature positions that agree."""
    import numpy as np

    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), block):
        out[s:s + block] = (sig[i[s:s + block]] == sig[j[s:s + block]]).mean(axis=1)
    return out


def clusters(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The smallest row index of each row's connected component (pairs as edges)."""
    import numpy as np

    label = np.arange(n)
    if not len(i):
        return label
    while True:
        m = np.minimum(label[i], label[j])
        before = label.copy()
        np.minimum.at(label, i, m)
        np.minimum.at(label, j, m)
        while True:  # pointer jumping: every row to its component's current root
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return label


class NearDedup(Step):
    name = "near_dedup"
    Params = NearDedupParams
    cache = True  # signatures of every row: worth keeping

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        import numpy as np

        p = self.params
        cols = p.columns or [c for c, t in df.schema.items() if t == pl.String and c not in BOOKKEEPING]
        if not cols:
            raise StepError("no text column to compare; name them with `columns:`")
        require_columns(df, cols)
        if df.height < 2:
            return df
        text = pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in cols], separator="\n")
        if p.ignore_space:
            text = text.str.replace_all(r"\s+", "")
        texts = df.select(text.alias("t")).to_series()
        bands, rows = (p.bands, p.num_perm // p.bands) if p.bands else optimal_bands(p.threshold, p.num_perm)
        sig = signatures(texts, p.shingle, p.num_perm)
        pairs = candidate_pairs(sig, bands, rows)
        sim = similarity(sig, pairs[:, 0], pairs[:, 1]) if len(pairs) else np.empty(0)
        keep_pair = sim >= p.threshold
        i, j = pairs[keep_pair, 0], pairs[keep_pair, 1]
        root = clusters(df.height, i, j)
        dropped = np.flatnonzero(root != np.arange(df.height))
        ids = df["id"]
        ctx.drop("near_duplicate", len(dropped))
        ctx.table(p.table, pl.DataFrame({
            "id": ids.gather(dropped), "kept_id": ids.gather(root[dropped]),
            "similarity": similarity(sig, dropped, root[dropped]) if len(dropped) else np.empty(0)}))
        ctx.info["near_dedup"] = {"dropped": len(dropped), "clusters": len(np.unique(root[dropped])),
                                  "candidate_pairs": len(pairs), "confirmed_pairs": int(keep_pair.sum()),
                                  "bands": bands, "rows_per_band": rows, "table": f"tables/{p.table}.parquet"}
        return df.filter(pl.Series(root == np.arange(df.height)))
