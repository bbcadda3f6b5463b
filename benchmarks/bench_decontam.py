"""The decontaminate step's two units (characters, Kiwi morphemes) on planted KoBEST items and clean Korean text:
how many of each variant are caught, how many clean rows are flagged, and rows per second.

    python benchmarks/bench_decontam.py [--kobest data/samples/kobest/hub]

Planted variants of every item (the shipped sample KoBEST unless --kobest names a real download): the item as it is;
its spacing changed (every space removed, or doubled); inside a longer chat turn (a sentence before and after); its
punctuation and a particle changed; only half of it. Clean rows: every sample LLM answer and every sample prompt of
the shipped recipes' sources (data/samples/llm_answers).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datafactory.steps.base import StepContext  # noqa: E402
from datafactory.steps.decontaminate import Decontaminate, DecontaminateParams  # noqa: E402


def variants(text: str) -> dict[str, str]:
    words = text.split()
    return {"as is": text, "no spaces": "".join(words), "double spaces": "  ".join(words),
            "inside a turn": f"어제 친구가 이런 얘기를 했어요. {text} 어떻게 생각하세요?",
            "punctuation and a particle": text.replace(".", "!").replace("를 ", "을 ").replace("가 ", "는 "),
            "half of it": " ".join(words[: max(1, len(words) // 2)])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kobest", default=str(REPO / "data" / "samples" / "kobest" / "hub"))
    a = ap.parse_args()
    base = Decontaminate(DecontaminateParams(columns=["text"], against=[{"kobest": a.kobest}]), REPO)
    items = base.items()
    planted = [(kind, v) for it in items for kind, v in variants(it["text"]).items()]
    clean = []
    for f in sorted((REPO / "data" / "samples" / "llm_answers").glob("*.jsonl")):
        for line in f.read_text("utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                clean += [t for t in (rec.get("input"), *rec.get("answers", [])) if t]
    texts = [v for _, v in planted] + clean
    df = pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "source": ["s"] * len(texts), "text": texts})
    print(f"{len(items)} benchmark pieces (items; HellaSwag: context + each ending) from {a.kobest}; {len(planted)} planted rows, {len(clean)} clean rows\n")
    print("| unit (n) | " + " | ".join(variants("a b").keys()) + " | clean rows flagged | rows/s |")
    print("|---" * (len(variants("a b")) + 3) + "|")
    for unit in ("chars", "morphemes"):
        step = Decontaminate(DecontaminateParams(columns=["text"], against=[{"kobest": a.kobest}], unit=unit,
                                                 action="mark"), REPO)
        step.apply(df.head(2), StepContext(seed=0, work_dir=Path(".")))  # Kiwi's model loaded before the clock
        t0 = time.perf_counter()
        out = step.apply(df, StepContext(seed=0, work_dir=Path(".")))
        rate = df.height / (time.perf_counter() - t0)
        marked = out["contaminated"].is_not_null().to_list()
        caught = {}
        for (kind, _), m in zip(planted, marked):
            caught.setdefault(kind, [0, 0])
            caught[kind][0] += m
            caught[kind][1] += 1
        flagged = sum(marked[len(planted):])
        from datafactory.steps.decontaminate import DEFAULT_N

        print(f"| {unit} ({DEFAULT_N[unit]}) | " + " | ".join(f"{c}/{n}" for c, n in caught.values())
              + f" | {flagged}/{len(clean)} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
