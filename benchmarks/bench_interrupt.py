"""Stopping a cold build mid-parse: how soon the program exits after SIGINT or SIGTERM, with what code, and what it
leaves behind (processes of its group still running, half-written cache folders).

    python benchmarks/bench_interrupt.py 100000                 # corpus of benchmarks/corpus.py, made once under /tmp
    python benchmarks/bench_interrupt.py 100000 --after 3 --rounds 2 --modes pid-int,group-term

Modes: the signal (int, term) sent to the program alone (pid-) or to its whole process group (group-), as a
terminal's Ctrl-C or a scheduler does. Each run builds the recipe of bench_scale.py in a fresh data folder, in its
own session, and signals it ``--after`` seconds in.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from bench_scale import _workspace  # noqa: E402

from tests.procs import alive_in_group  # noqa: E402


def run(work: Path, cmd: list[str], mode: str, after: float) -> dict:
    shutil.rmtree(work / "data", ignore_errors=True)
    proc = subprocess.Popen([*cmd, "build", "nikl_sft"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    time.sleep(after)
    sig = signal.SIGINT if mode.endswith("int") else signal.SIGTERM
    sent = time.perf_counter()
    if mode.startswith("group"):
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        code = proc.wait(30)
        exited = f"{time.perf_counter() - sent:.2f} s"
    except subprocess.TimeoutExpired:
        code, exited = None, "still running after 30 s"
    time.sleep(1)
    left = alive_in_group(proc.pid)
    for pid in left:  # leave the machine as it was for the next run
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if code is None:
        proc.kill()
        proc.wait()
    tmp = [p.name for p in (work / "data").rglob("*.tmp")] if (work / "data").exists() else []
    last = (proc.stderr.read() or "").strip().splitlines()[-1:] if code is not None else []
    return {"mode": mode, "code": code, "exited": exited, "left": len(left), "tmp": len(tmp), "said": last[0] if last else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=int)
    ap.add_argument("--after", type=float, default=3.0, help="seconds into the build to send the signal")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--modes", default="pid-int,group-int,pid-term,group-term")
    args = ap.parse_args()
    _, work, _, cmd = _workspace(args.files, "df-interrupt-", "prompt, completion, instruction")
    cmd = [c for c in cmd if c != "-q"]  # the last line said is what the program tells the user
    print("| signal | exit code | exited after the signal | processes left | half-written folders left | said |")
    print("|---|---|---|---|---|---|")
    try:
        for _ in range(args.rounds):
            for mode in args.modes.split(","):
                r = run(work, cmd, mode, args.after)
                print(f"| {r['mode']} | {r['code']} | {r['exited']} | {r['left']} | {r['tmp']} | {r['said'][:90]} |",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
