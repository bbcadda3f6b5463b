"""The `files` source on one large JSON Lines file (a Hub instruction set, as Korean teams download them): the
columnar path (polars reads the file) against the record parser it falls back to, and against what a plain script
would use (pandas, polars), in one run.

    python benchmarks/bench_files.py              # 300,000 lines (about 140 MB), generated once under /tmp
    python benchmarks/bench_files.py 1000000 --rounds 5

Each figure is the median of ``--rounds`` runs in this process, alternating; both datafactory paths must give the
same frame.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path


def corpus(lines: int) -> Path:
    folder = Path(tempfile.gettempdir()) / f"df-files-{lines}"
    path = folder / "ko_instructions.jsonl"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(1)
        with open(path.with_suffix(".tmp"), "w", encoding="utf-8") as f:
            for i in range(lines):
                f.write(json.dumps({"id": i, "instruction": "다음 문장을 요약하세요. " + "가나다라마바사 " * rng.randint(2, 20),
                                    "input": "", "output": "요약한 결과입니다. " * rng.randint(1, 10),
                                    "meta": {"source": "synthetic", "len": rng.randint(1, 500)}}, ensure_ascii=False) + "\n")
        path.with_suffix(".tmp").replace(path)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("lines", nargs="?", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    folder = corpus(args.lines)
    file = next(folder.glob("*.jsonl"))

    import pandas as pd
    import polars as pl

    from datafactory.sources.files import FilesOptions, FilesSource

    options = FilesOptions(fields={"instruction": "instruction", "output": "output"}, id="id")

    def columnar():
        return FilesSource("s", str(folder), options).read().frame

    def records():
        src = FilesSource("s", str(folder), options)
        src.parse_batch = lambda files: None
        return src.read().frame

    runs = {"datafactory, columnar (polars reads the file)": columnar, "datafactory, record parser": records,
            "plain script: pandas.read_json(lines=True)": lambda: pd.read_json(file, lines=True),
            "plain script: polars.read_ndjson": lambda: pl.read_ndjson(file)}
    times = {k: [] for k in runs}
    frames = {}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            frames[name] = fn()
            times[name].append(time.perf_counter() - t)
    a, b = frames["datafactory, columnar (polars reads the file)"], frames["datafactory, record parser"]
    assert a.equals(b), "the two paths differ"
    mb = file.stat().st_size / 1e6
    print(f"| {args.lines:,} lines ({mb:,.0f} MB) | median of {args.rounds} (runs) |\n|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} s ({' / '.join(f'{t:.2f}' for t in ts)}) |")
    print(f"\nsame rows both ways: {a.height:,}")


if __name__ == "__main__":
    main()
