"""LLM throughput against the local fake OpenAI-compatible server (tests/llm/fake_openai.py), side by side:

1. datafactory's client: 2,000 translate requests, 200 ms latency per call, the endpoint limited to
   3,000 requests/minute (answered with 429 past it), the profile giving that limit and 32 concurrent calls.
   Goal: at least 90% of the limit (45 calls/s) with at most 1% of calls answered 429.
2. a sequential loop like the seed's scripts (the sync OpenAI client, one call after another) on the first
   150 of the same texts, with the same latency.

    python benchmarks/bench_llm.py            # prints a markdown table for BENCHMARKS.md
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

N, SEQUENTIAL, LATENCY, RPM, CONCURRENCY = 2000, 150, 0.2, 3000, 32


def start_server(tmp: Path) -> tuple[subprocess.Popen, str, Path]:
    port, log = tmp / "port", tmp / "server.log"
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/llm/fake_openai.py"), "--port-file", str(port), "--log",
                             str(log), "--latency", str(LATENCY), "--rpm", str(RPM)], stdout=subprocess.DEVNULL)
    while not port.exists():
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port.read_text()}/v1", log


def statuses(log: Path) -> list[int]:
    return [json.loads(x)["status"] for x in log.read_text().splitlines()] if log.exists() else []


def main() -> None:
    import yaml

    from datafactory.llm.client import LLMClient
    from datafactory.llm.profiles import load_profile
    from datafactory.llm.store import ResponseStore
    from datafactory.llm.types import Request

    texts = [f"Sentence number {i}: the weather is nice today, so let's take a walk in the park." for i in range(N)]
    tmp = Path(tempfile.mkdtemp(prefix="df-bench-llm-"))
    os.environ["DF_BENCH_KEY"] = "sk-bench"
    proc, base_url, log = start_server(tmp)
    try:
        profile_path = tmp / "profiles" / "bench.yaml"
        profile_path.parent.mkdir()
        profile_path.write_text(yaml.safe_dump({"roles": {"translator": {
            "provider": "openai", "model": "gpt-4o-mini", "base_url": base_url, "api_key_env": "DF_BENCH_KEY",
            "params": {"max_tokens": 64}, "rpm": RPM, "concurrency": CONCURRENCY}}}), "utf-8")
        client = LLMClient(load_profile(str(profile_path), tmp), ResponseStore(tmp / "store.sqlite3"))
        step = client.for_step("bench")
        requests = [Request("translator", [{"role": "user", "content": t}], meta={"task": "translate"}) for t in texts]
        t0 = time.perf_counter()
        answers = step.complete(requests)
        ours = time.perf_counter() - t0
        assert all(a.texts for a in answers)
        ours_statuses = statuses(log)
        n_429 = sum(1 for s in ours_statuses if s == 429)

        from openai import OpenAI

        seq = OpenAI(api_key="sk-bench", base_url=base_url)
        t0 = time.perf_counter()
        for t in texts[:SEQUENTIAL]:
            seq.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": t + " (seq)"}],
                                        max_tokens=64)
        sequential = time.perf_counter() - t0
    finally:
        proc.kill()
    rate = N / ours
    rows = [
        (f"datafactory client: {N:,} calls, {LATENCY * 1000:.0f} ms latency, limit {RPM:,}/min, concurrency {CONCURRENCY}",
         f"{ours:.1f} s = {rate:.1f} calls/s ({rate * 60 / RPM:.0%} of the limit), {n_429} answered 429 "
         f"({n_429 / max(1, len(ours_statuses)):.1%})"),
        (f"sequential loop (sync OpenAI client), {SEQUENTIAL} calls, same latency",
         f"{sequential:.1f} s = {SEQUENTIAL / sequential:.1f} calls/s"),
    ]
    print("| run | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
