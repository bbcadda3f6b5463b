"""Every trainer on the TRL this Python has, at toy scale: which stages run, and how long each takes.

    python benchmarks/bench_trl.py                       # the venv's TRL (CI pins 1.12 for PPO)
    /tmp/v116/bin/python benchmarks/bench_trl.py         # a venv made with: pip install torch==2.13.0 && pip install -e '.[dev,train]'

In a fresh copy of the project (recipes, profiles, samples): builds sft_v2, rm_v3 and ppo_v1 from the sample answers,
a tiny GPT-NeoX, then runs sft, rm, dpo, grpo, rloo and ppo with trainers/configs/tiny/*.yaml and a few steps each. A
stage passes when it exits 0 and leaves a complete datafactory.json (and the RL stages a report.json); ppo.py on a TRL
without PPO passes when it says so in one line. Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINERS, TINY = REPO / "trainers", REPO / "trainers" / "configs" / "tiny"


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="bench-trl-"))
    for d in ("recipes", "profiles"):
        shutil.copytree(REPO / d, root / d)
    shutil.copytree(REPO / "data" / "samples", root / "data" / "samples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFACTORY_")}
    env.update(TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    py = sys.executable

    def run(*args: str) -> tuple[subprocess.CompletedProcess, float]:
        t0 = time.perf_counter()
        p = subprocess.run([py, *args], cwd=root, env=env, capture_output=True, text=True)
        return p, time.perf_counter() - t0

    for name in ("rm_v3", "ppo_v1"):
        p, _ = run("-m", "datafactory", "-q", "build", name)
        if p.returncode:
            sys.exit(p.stderr)
    p, _ = run(str(TRAINERS / "tiny_model.py"), "--dataset", "sft_v2", "--output", "models/tiny")
    if p.returncode:
        sys.exit(p.stderr)
    rl = ("--model", "models/sft", "--reward_model", "models/rm", "--report_prompts", "2", "--report_samples", "2")
    stages = [
        ("sft", "sft_v2", ("--model", "models/tiny", "--output", "models/sft", "--num_train_epochs", "3")),
        ("rm", "rm_v3", ("--model", "models/sft", "--output", "models/rm")),
        ("dpo", "rm_v3", ("--model", "models/sft", "--output", "models/dpo", "--max_steps", "4")),
        ("grpo", "ppo_v1", (*rl, "--output", "models/grpo", "--max_steps", "8")),
        ("rloo", "ppo_v1", (*rl, "--output", "models/rloo", "--max_steps", "8")),
        ("ppo", "ppo_v1", (*rl, "--output", "models/ppo", "--total_episodes", "16")),
    ]
    rows = []
    for stage, dataset, extra in stages:
        p, seconds = run(str(TRAINERS / f"{stage}.py"), "--config", str(TINY / f"{stage}.yaml"), "--dataset", dataset,
                         *extra)
        folder = root / "models" / extra[extra.index("--output") + 1].split("/")[-1]
        meta = folder / "datafactory.json"
        ok = p.returncode == 0 and meta.exists() and json.loads(meta.read_text("utf-8")).get("complete")
        if ok and stage in ("grpo", "rloo", "ppo"):
            ok = (folder / "report.json").exists()
        said = p.stderr.strip().splitlines()
        if not ok and stage == "ppo" and p.returncode == 1 and len(said) == 1 and "PPO needs TRL 1.12" in said[0]:
            rows.append((stage, "says in one line how to get TRL 1.12 (no PPO in this TRL)", seconds))
            continue
        rows.append((stage, "runs" if ok else f"FAILED ({p.returncode}): {(said or ['?'])[-1][:120]}", seconds))
    print(f"TRL {version('trl')}, transformers {version('transformers')}, peft {version('peft')}, "
          f"torch {version('torch')}, Python {sys.version.split()[0]}\n")
    print("| stage | result | wall |\n|---|---|---|")
    for stage, result, seconds in rows:
        print(f"| {stage} | {result} | {seconds:.1f} s |")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r[1].startswith(("runs", "says")) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
