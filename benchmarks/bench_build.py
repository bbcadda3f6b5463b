"""Build-time benchmarks, measured through the real CLI in fresh processes (python benchmarks/bench_build.py).

1. A 100k-row recipe (files source, normalize, filters, dedup, KULLM template, split): first build, no-op
   rebuild (the issue's goal: under a second), and a rebuild after changing the last step (step cache).
2. NIKL parsing at the real 2021 release's size: the shipped sample dialogues copied to 4,143 files, read
   from a folder and from a zip.
Prints a markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = """
name: big
sources:
  qa: {kind: files, path: qa.jsonl, options: {id: qid, fields: {instruction: q, output: a}}}
steps:
  - normalize: {columns: [instruction, output]}
  - filter: {length: {column: output, min: 2}}
  - filter: {regex: {column: output, pattern: "http"}, reason: url}
  - dedup: {columns: [instruction, output]}
  - template: {}
  - rename: {columns: {output: completion}}
  - LAST
output: {format: sft}
splits: {train: 0.95, test: 0.05}
"""


def run(root: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "datafactory", "-q", "--data", str(root / "data"), "--recipes",
                    str(root / "recipes"), *args], check=True, cwd=root, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_recipe(rows: int) -> list[tuple[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="df-bench-"))
    (root / "recipes").mkdir()
    with open(root / "qa.jsonl", "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"qid": i, "q": f"질문 {i}번: 오늘 날씨가 어때요? 자세히 알려 주세요.",
                                "a": f"{i}번 답변입니다. 오늘은 맑고 기온은 {i % 30}도입니다."}, ensure_ascii=False) + "\n")
    recipe = root / "recipes" / "big.yaml"
    recipe.write_text(RECIPE.replace("LAST", "select: {columns: [prompt, completion, instruction]}"), "utf-8")
    first = run(root, "build", "big")
    noop = statistics.median(run(root, "build", "big") for _ in range(5))
    recipe.write_text(RECIPE.replace("LAST", "select: {columns: [prompt, completion]}"), "utf-8")
    changed = run(root, "build", "big")
    startup = statistics.median(run(root, "--help") for _ in range(3))
    shutil.rmtree(root)
    return [(f"first build, {rows:,} rows", f"{first:.2f} s"),
            (f"no-op rebuild, {rows:,} rows (median of 5)", f"{noop:.2f} s"),
            ("rebuild after changing the last step (earlier steps cached)", f"{changed:.2f} s"),
            ("`datafactory --help` (interpreter + imports)", f"{startup:.2f} s")]


def bench_nikl(n_files: int = 4143) -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO))
    from datafactory.sources import SOURCES

    src_files = sorted((REPO / "data/samples/nikl_dialogue").rglob("SDRW*.json"))
    root = Path(tempfile.mkdtemp(prefix="df-nikl-"))
    folder = root / "NIKL_DIALOGUE_2021_v1.1"
    folder.mkdir()
    for i in range(n_files):
        doc = json.loads(src_files[i % len(src_files)].read_text("utf-8"))
        doc["id"] = f"SDRW21{i:08d}"
        doc["document"][0]["id"] = f"SDRW21{i:08d}.1"
        (folder / f"SDRW21{i:08d}.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    with zipfile.ZipFile(root / "release.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"NIKL_DIALOGUE_2021_v1.1/{p.name}")
    out = []
    cls = SOURCES["nikl_dialogue"]
    for label, path in (("folder", folder), ("zip", root / "release.zip")):
        t0 = time.perf_counter()
        read = cls("daily", str(path), cls.Options()).read()
        dt = time.perf_counter() - t0
        out.append((f"NIKL parse + clean, {n_files:,} files from a {label} -> {read.frame.height:,} pairs", f"{dt:.2f} s"))
    shutil.rmtree(root)
    return out


if __name__ == "__main__":
    rows = bench_recipe(100_000) + bench_nikl()
    print("| measurement | wall time |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
