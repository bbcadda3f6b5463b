"""Tokens per second of trainers/sft.py against a plain TRL script (benchmarks/plain_sft.py), side by side in one
run: the same GPT-NeoX built from a config (hidden 256, 4 layers), the same rows (sft_v2's train split), the same
settings, alternating, 3 runs each. Tokens are the trainer's own count (`num_tokens`) over its `train_runtime`;
the wall time of each whole process is shown too (ours also pins the dataset, writes metadata and checks that
greedy answers stop).

    python benchmarks/bench_sft.py            # prints a markdown table for BENCHMARKS.md
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EPOCHS = "6"


def run(cmd: list[str]) -> tuple[float, str, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return wall, p.stdout, p.stderr



def main():
    from datafactory.training import resolve_dataset, tiny_gpt_neox

    subprocess.run([sys.executable, "-m", "datafactory", "build", "sft_v2", "-q"], cwd=REPO, check=True)
    ds = resolve_dataset("sft_v2")
    train_file = ds.data_dir / ds.name / ds.version / ds.manifest["files"]["train"]
    texts = [t for split in ds.splits for col in ("prompt", "completion") for t in ds.split(split)[col]]
    rows = {"ours": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_gpt_neox(Path(tmp) / "base", texts, hidden=256, layers=4, vocab_size=1000)
        for i in range(3):
            wall, out, err = run([sys.executable, "trainers/sft.py", "--dataset", "sft_v2", "--model", str(model),
                                  "--output", f"{tmp}/ours{i}", "--num_train_epochs", EPOCHS, "--learning_rate", "3e-3",
                                  "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
                                  "--max_length", "256", "--logging_steps", "1000"])
            m = json.loads((Path(tmp) / f"ours{i}" / "datafactory.json").read_text())["metrics"]["train"]
            rows["ours"].append((m["num_tokens"] / m["train_runtime"], m["train_runtime"], wall))
            wall, out, err = run([sys.executable, "benchmarks/plain_sft.py", str(train_file), str(model),
                                  f"{tmp}/plain{i}", EPOCHS])
            m = json.loads(out.split("METRICS ", 1)[1])
            rows["plain"].append((m.get("num_tokens", 0) / m["train_runtime"], m["train_runtime"], wall))
    print("| script | tokens/s in train() (median of 3) | train() time | whole process |")
    print("|---|---|---|---|")
    med = {}
    for k, label in (("plain", "plain TRL script (benchmarks/plain_sft.py)"), ("ours", "trainers/sft.py")):
        tps, rt, wall = (statistics.median(x[i] for x in rows[k]) for i in range(3))
        med[k] = tps
        print(f"| {label} | {tps:,.0f} | {rt:.2f} s | {wall:.2f} s |")
    print(f"\nratio trainers/sft.py / plain: {med['ours'] / med['plain']:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
