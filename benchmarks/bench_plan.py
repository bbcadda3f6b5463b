"""`datafactory plan` of an LLM recipe over N prompts (a `files` source generated here): wall time, CPU time and peak
memory, measured from outside in a fresh process (benchmarks/bench_scale.py's `measure`).

    python benchmarks/bench_plan.py 100000                         # this checkout
    python benchmarks/bench_plan.py 100000 --against /tmp/old      # and another checkout (git worktree add /tmp/old REV)

The prompts are varied Korean lines of about 500 o200k tokens (a few sentences drawn from a fixed list, numbers
and English mixed in), one JSON object per line. The recipe answers each with the `teacher` role of
profiles/openai.yaml (gpt-4o-mini) and nothing is called: plan counts the tokens of every request and prices them.
Also prints how long counting the same requests' tokens takes alone, in this process.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scale import measure  # noqa: E402

SENTENCES = [
    "주말에 가족과 함께 북한산에 다녀왔는데 단풍이 정말 아름다웠어요.", "요즘 회사 일이 많아서 잠을 잘 못 자고 있어요.",
    "혼자 사는 대학생을 위한 일주일 장보기 목록을 만들어 주세요.", "하늘은 왜 파란지 초등학생도 이해할 수 있게 설명해 줄래요?",
    "The meeting was moved to 3 p.m., so please update the calendar.", "반려견이 산책을 싫어하는데 어떻게 하면 좋을까요?",
    "다음 달 제주도 여행 일정을 2박 3일로 짜 주세요. 예산은 50만 원입니다.", "파이썬에서 리스트와 튜플의 차이가 뭔가요?",
    "어제 본 영화는 결말이 너무 갑작스러워서 조금 아쉬웠어요.", "건강검진 결과 콜레스테롤 수치가 높게 나왔어요.",
    "할머니 생신 선물로 무엇이 좋을지 추천해 주세요.", "환율이 1,350원을 넘으면서 해외 직구가 부담스러워졌어요.",
]
RECIPE = """name: plan_bench
description: benchmarks/bench_plan.py's recipe
sources:
  p: {kind: files, path: inputs/prompts.jsonl, options: {id: id}}
steps:
  - respond: {roles: [teacher], prompt: respond, input: instruction, output: output}
output: {format: sft}
splits: {train: 1.0}
"""


def prompts(n: int, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        k = rnd.randint(16, 24)  # about 500 o200k tokens
        out.append(f"{i}번 질문입니다. " + " ".join(rnd.choice(SENTENCES) for _ in range(k)))
    return out


def workspace(n: int) -> Path:
    root = Path(f"/tmp/df-plan-{n}")
    if not (root / "inputs" / "prompts.jsonl").exists():
        shutil.rmtree(root, ignore_errors=True)
        (root / "inputs").mkdir(parents=True)
        with open(root / "inputs" / "prompts.jsonl", "w", encoding="utf-8") as f:
            for i, text in enumerate(prompts(n)):
                f.write(json.dumps({"id": f"q{i}", "instruction": text}, ensure_ascii=False) + "\n")
    for d in ("recipes", "profiles"):
        shutil.rmtree(root / d, ignore_errors=True)
    (root / "recipes").mkdir()
    (root / "recipes" / "plan_bench.yaml").write_text(RECIPE, "utf-8")
    shutil.copytree(REPO / "profiles", root / "profiles")
    return root


def plan_once(checkout: Path, root: Path) -> dict:
    shutil.rmtree(root / "data", ignore_errors=True)  # nothing cached: the source is read and every request counted
    cmd = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(checkout)!r}); from datafactory.cli import main; "
           "sys.argv = ['datafactory', '--llm', 'openai', 'plan', 'plan_bench']; main()"]
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = measure(cmd, root)  # exits with the error if plan fails
    return {**r, "cpu": r["cpu_total"] - (ru.ru_utime + ru.ru_stime)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, nargs="?", default=100_000)
    ap.add_argument("--against", type=Path, default=None, help="another checkout, planned alternately")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    root = workspace(a.n)
    checkouts = [("this checkout", REPO)] + ([(f"{a.against}", a.against)] if a.against else [])
    runs = {label: [] for label, _ in checkouts}
    for _ in range(a.rounds):
        for label, checkout in checkouts:
            runs[label].append(plan_once(checkout, root))
    print(f"`datafactory --llm openai plan plan_bench` over {a.n:,} prompts (median of {a.rounds}):\n")
    print("| checkout | wall | CPU | peak memory | wall of each run |\n|---|---|---|---|---|")
    for label, rs in runs.items():
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"| {label} | {med('wall'):.2f} s | {med('cpu'):.2f} s | {med('peak_mib'):.0f} MiB | "
              f"{' / '.join(format(r['wall'], '.2f') for r in rs)} |")
    out = runs["this checkout"][-1]["out"]
    print("\nplan's LLM lines:\n" + "\n".join(line for line in out.splitlines() if "token" in line))

    from datafactory.llm.cost import count_messages, counter

    texts = prompts(a.n)
    t0 = time.perf_counter()
    total = sum(count_messages([{"role": "user", "content": t}], "o200k_base") for t in texts)
    seconds = time.perf_counter() - t0
    print(f"\ncounting the {a.n:,} prompts alone ({counter()}): {seconds:.2f} s, {total:,} tokens, "
          f"{total / seconds / 1e6:.2f}M tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
