"""near_dedup against datasketch on the same rows with planted near duplicates: rows per second, precision, recall.

    python benchmarks/bench_dedup.py [ROWS]        # default 20,000 rows (+10% planted copies)

Rows: turn pairs (instruction + reply) parsed from a synthetic NIKL corpus (benchmarks/corpus.py), exact
duplicates removed. Planted: a tenth of them copied with 1 to 3 syllables changed, the spacing changed, or a word
appended. Both methods see the same text (whitespace removed, 3-character shingles, 128 permutations, threshold
0.8) and keep the first row of each group:
  - datasketch: MinHash.update_batch per row, MinHashLSH.query, then insert the row if it matched nothing;
  - near_dedup: the step itself (vectorised signatures, LSH bands, the estimated-similarity check).
A dropped row is right when its exact Jaccard similarity (of the shingle sets) with some earlier row is >= the
threshold. The rows that should be dropped are found among every pair either method proposed and every planted
pair (an exhaustive search over all pairs is out of reach), so recall is measured against that union.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from corpus import make_nikl  # noqa: E402

THRESHOLD, PERM, K = 0.8, 128, 3


def rows(n: int) -> tuple[list[str], dict[int, int]]:
    from datafactory.sources import SOURCES

    corpus = make_nikl(Path(tempfile.gettempdir()) / "df-scale-10000", 10_000)
    cls = SOURCES["nikl_dialogue"]
    frame = cls("daily", str(corpus), cls.Options()).read().frame
    texts = frame.select(pl.concat_str("instruction", "output", separator="\n")).to_series().unique(maintain_order=True)
    base = texts.head(n).to_list()
    rng = random.Random(7)
    planted, truth = [], {}
    for k in range(n // 10):
        i = rng.randrange(len(base))
        s = list(base[i])
        kind = k % 3
        if kind == 0:
            for _ in range(rng.randint(1, 3)):
                s[rng.randrange(len(s))] = chr(0xAC00 + rng.randrange(11172))
            t = "".join(s)
        elif kind == 1:
            t = base[i].replace(" ", "") if " " in base[i] else base[i] + " "
        else:
            t = base[i] + " 진짜"
        truth[len(base) + len(planted)] = i
        planted.append(t)
    return base + planted, truth


def shingles(t: str) -> set[str]:
    t = "".join(t.split())
    return {t[i:i + K] for i in range(max(len(t) - K + 1, 1))}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def run_datasketch(texts: list[str]) -> tuple[float, dict[int, list[int]]]:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PERM)
    dropped = {}
    for i, t in enumerate(texts):
        m = MinHash(num_perm=PERM)
        m.update_batch([s.encode("utf-8") for s in shingles(t)])
        hits = lsh.query(m)
        if hits:
            dropped[i] = sorted(hits)
        else:
            lsh.insert(i, m)
    return time.perf_counter() - t0, dropped


def run_ours(texts: list[str]) -> tuple[float, dict[int, list[int]]]:
    from datafactory.steps import STEPS
    from datafactory.steps.base import StepContext

    df = pl.DataFrame({"id": [str(i) for i in range(len(texts))], "source": "s", "text": texts})
    cls = STEPS["near_dedup"]
    step = cls(cls.Params(columns=["text"], threshold=THRESHOLD, num_perm=PERM, shingle=K))
    ctx = StepContext(seed=1, work_dir=Path(tempfile.gettempdir()))
    t0 = time.perf_counter()
    step.apply(df, ctx)
    dt = time.perf_counter() - t0
    table = ctx.tables["near_duplicates"]
    return dt, {int(a): [int(b)] for a, b in zip(table["id"], table["kept_id"])}


def score(texts: list[str], dropped: dict[int, list[int]], should: set[int]) -> tuple[float, float]:
    right = {i for i, twins in dropped.items() if any(jaccard(texts[i], texts[j]) >= THRESHOLD for j in twins)}
    precision = len(right) / max(len(dropped), 1)
    recall = len(set(dropped) & should) / max(len(should), 1)
    return precision, recall


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    texts, truth = rows(n)
    t_ds, ds = run_datasketch(texts)
    t_us, us = run_ours(texts)
    candidates = {(i, j) for i, js in [*ds.items(), *us.items()] for j in js} | {(i, j) for i, j in truth.items()}
    should = {i for i, j in candidates if j < i and jaccard(texts[i], texts[j]) >= THRESHOLD}
    print(f"{len(texts):,} rows ({len(truth):,} planted copies), threshold {THRESHOLD}, {PERM} permutations, "
          f"{K}-character shingles without spaces; rows that should go: {len(should):,}\n")
    print("| method | seconds | rows/s | dropped | precision | recall |\n|---|---|---|---|---|---|")
    for name, dt, got in (("datasketch 2.0 (MinHash + MinHashLSH)", t_ds, ds), ("datafactory near_dedup", t_us, us)):
        p, r = score(texts, got, should)
        print(f"| {name} | {dt:.2f} | {len(texts) / dt:,.0f} | {len(got):,} | {p:.3f} | {r:.3f} |")
    print(f"\nspeed-up: {t_ds / t_us:.1f}x the rows per second")
