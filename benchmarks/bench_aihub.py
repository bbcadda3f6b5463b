"""AIHub 텍스트 윤리검증 label files at scale: the aihub_ethics source against a plain script, side by side.

    python benchmarks/bench_aihub.py [TALKSETS]        # default 100000; the corpus is generated once under /tmp

Each run is a fresh process (interpreter start-up and imports included), timed from outside:
  - a plain script written the seed's way (``json.load`` per file, a Python loop per sentence, pandas),
  - the source's reader (``Source.read``: the columnar fast path),
  - the same reader with the fast path turned off (the per-record ``parse``, what every file went through before).
All three must give the same number of sentences.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from corpus import make_aihub  # noqa: E402

PLAIN = """
import glob, json, sys
import pandas as pd
rows = []
for p in sorted(glob.glob(sys.argv[1] + "/**/talksets-train-*.json", recursive=True)):
    with open(p, encoding="utf-8") as f:
        talks = json.load(f)
    for talk in talks:
        for i, s in enumerate(talk["sentences"]):
            rows.append({"text": s["text"].strip(), "types": s["types"], "is_immoral": s["is_immoral"],
                         "intensity": float(s["intensity"]), "talkset_id": str(talk["id"]), "sentence_id": str(s["id"]),
                         "position": i})
print(len(pd.DataFrame(rows)))
"""

OURS = """
import sys
from datafactory.sources.aihub_ethics import AihubEthicsSource, AihubOptions
if sys.argv[2] == "per-record":
    AihubEthicsSource.parse_batch = lambda self, files: None
if __name__ == "__main__":
    print(AihubEthicsSource("hate", sys.argv[1], AihubOptions()).read().frame.height)
"""


def timed(code: str, *args: str) -> tuple[float, str]:
    script = Path(tempfile.mkdtemp()) / "run.py"  # a file, not -c: worker processes import the main module
    script.write_text(code, "utf-8")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t, out.strip()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    corpus = make_aihub(Path(tempfile.gettempdir()) / f"df-aihub-{n}", n)
    plain = timed(PLAIN, str(corpus))
    fast = timed(OURS, str(corpus), "fast")
    slow = timed(OURS, str(corpus), "per-record")
    print(f"| run | {n:,} talksets, {plain[1]} sentences |\n|---|---|")
    print(f"| plain script (json.load, a loop per sentence, pandas) | {plain[0]:.2f} s |")
    print(f"| aihub_ethics, per-record parse | {slow[0]:.2f} s |")
    print(f"| aihub_ethics, columnar fast path | {fast[0]:.2f} s ({plain[0] / fast[0]:.1f}x the plain script) |")
    print(f"| same sentences | {'yes' if plain[1] == fast[1] == slow[1] else f'NO: {plain[1]} / {fast[1]} / {slow[1]}'} |")
