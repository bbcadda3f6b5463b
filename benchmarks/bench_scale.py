"""The seed's SFT job at scale: datafactory against the plain script it replaces, side by side in one run.

    python benchmarks/bench_scale.py 10000 100000        # file counts; corpora are generated once under /tmp
    python benchmarks/bench_scale.py 100000 --rounds 3   # the script and the cold build 3 times each, alternating
    python benchmarks/bench_scale.py 100000 --against /tmp/old --rounds 3   # cold builds of another checkout
                                                                            # (git worktree add /tmp/old REV), alternating

For each size: synthetic NIKL files (benchmarks/corpus.py), then, each in a fresh process measured from outside
(wall time, CPU time of the process and its workers, peak memory as the largest sum of the resident sets of the
process tree, sampled every 10 ms, the tree and its CPU times every 100 ms):
  - the plain script (benchmarks/plain_nikl.py),
  - `datafactory build nikl_sft` cold (empty data folder),
  - the same build again (a no-op: the version exists),
  - a rebuild after changing the last step (the recipe's `select`).
Both must give the same number of pairs. Prints a markdown table and the ratios.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from corpus import make_nikl  # noqa: E402

RECIPE = """
name: nikl_sft
sources:
  daily: {{kind: nikl_dialogue, path: {corpus}}}
steps:
  - normalize: {{columns: [instruction, output]}}
  - dedup: {{columns: [instruction, output]}}
  - template: {{template: kullm}}
  - rename: {{columns: {{output: completion}}}}
  - select: {{columns: [{last}]}}
output: {{format: sft}}
splits: {{train: 0.95, test: 0.05}}
"""


def measure(cmd: list[str], cwd: Path) -> dict:
    """Wall seconds, CPU seconds (process tree) and peak resident memory (MiB, summed over the tree)."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, cpu, stop = [0], {}, threading.Event()

    def sample():
        # cheap on purpose: the sampler shares the 2 cores with what it measures (a build's workers keep both
        # busy; the script leaves one idle), so the process list and CPU times are read every 100 ms, the
        # resident sizes every 10 ms (a scan of /proc for children each time cost 15% of a core)
        procs, tick = [proc], 0
        while not stop.is_set():
            if tick % 10 == 0:
                try:
                    procs = [proc, *proc.children(recursive=True)]
                except psutil.Error:
                    pass
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    if tick % 10 == 0:
                        t = p.cpu_times()
                        cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], rss)
            tick += 1
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # exact CPU of everything waited for so far
    return {"wall": wall, "peak_mib": peak[0] / 2**20, "out": out, "cpu_total": ru.ru_utime + ru.ru_stime,
            "cpu_sampled": sum(cpu.values())}


def _median(runs: list[dict]) -> dict:
    """The run of median wall time (its CPU and memory with it), and every run's wall time."""
    ordered = sorted(runs, key=lambda r: r["wall"])
    return {**ordered[(len(ordered) - 1) // 2], "walls": [r["wall"] for r in runs]}


def _workspace(n_files: int, prefix: str, last: str) -> tuple[Path, Path, Path, list[str]]:
    """The corpus of ``n_files`` (generated once), a fresh work folder with the recipe (its ``select`` keeping
    ``last``), and the datafactory command line that builds in it, less the command."""
    corpus = make_nikl(Path(tempfile.gettempdir()) / f"df-scale-{n_files}", n_files)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    (work / "recipes").mkdir()
    recipe = work / "recipes" / "nikl_sft.yaml"
    recipe.write_text(RECIPE.format(corpus=corpus, last=last), "utf-8")
    return corpus, work, recipe, [sys.executable, "-m", "datafactory", "-q", "--data", str(work / "data"),
                                  "--recipes", str(work / "recipes")]


def run_size(n_files: int, rounds: int = 1) -> list[tuple[str, str, str]]:
    corpus, work, recipe, df = _workspace(n_files, "df-bench-scale-", "prompt, completion, instruction")
    cpu_before = 0.0

    def timed(cmd):
        nonlocal cpu_before
        r = measure(cmd, work)
        # exact for what was waited for; worker processes that were not are sampled (to 10 ms)
        r["cpu"], cpu_before = max(r["cpu_total"] - cpu_before, r["cpu_sampled"]), r["cpu_total"]
        return r

    plains, colds = [], []
    for _ in range(rounds):  # the script and the cold build alternate: the machine's drift falls on both alike
        plains.append(timed([sys.executable, str(REPO / "benchmarks" / "plain_nikl.py"), str(corpus),
                             str(work / "plain.parquet")]))
        shutil.rmtree(work / "data", ignore_errors=True)
        colds.append(timed([*df, "build", "nikl_sft"]))
    plain, cold = _median(plains), _median(colds)
    import polars as pl
    ours = pl.concat([pl.read_parquet(p) for p in (work / "data" / "nikl_sft").glob("*/*.parquet")])
    noop = timed([*df, "build", "nikl_sft"])
    recipe.write_text(RECIPE.format(corpus=corpus, last="prompt, completion"), "utf-8")
    changed = timed([*df, "build", "nikl_sft"])

    theirs = pl.read_parquet(work / "plain.parquet")
    same = ours.height == theirs.height and ours.select("prompt", "completion").sort("prompt", "completion").equals(
        theirs.select("prompt", "completion").sort("prompt", "completion"))
    shutil.rmtree(work)
    size_mb = sum(p.stat().st_size for p in corpus.iterdir()) / 1e6

    def fmt(r):
        runs = r.get("walls", [])
        return (f"{r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, {r['peak_mib']:,.0f} MiB"
                + (f" (median of {len(runs)}: " + " / ".join(f"{w:.2f}" for w in runs) + " s)" if len(runs) > 1 else ""))

    label = f"{n_files:,} files ({size_mb:,.0f} MB), {theirs.height:,} pairs"
    rows = [(label, "plain script", fmt(plain)),
            (label, "datafactory cold build", fmt(cold)),
            (label, "datafactory no-op rebuild", fmt(noop)),
            (label, "datafactory rebuild after changing the last step", fmt(changed)),
            (label, "ratios (plain / datafactory cold)",
             f"wall {plain['wall'] / cold['wall']:.2f}x, CPU {plain['cpu'] / cold['cpu']:.2f}x, "
             f"peak memory {cold['peak_mib'] / plain['peak_mib']:.2f} of the script's"),
            (label, "same pairs (prompt, completion)", "yes" if same else f"NO: {ours.height:,} vs {theirs.height:,}")]
    return rows


def against(n_files: int, other: Path, rounds: int) -> list[tuple[str, str, str]]:
    """Cold builds of another checkout of datafactory (``--against DIR``, e.g. ``git worktree add /tmp/old REV``)
    and of this one, alternating, ``rounds`` each: the machine's drift between runs falls on both alike. Each
    figure is the median of its runs."""
    import os
    import statistics

    corpus, work, _, df = _workspace(n_files, "df-bench-against-", "prompt, completion")
    cmd = [*df, "build", "nikl_sft"]
    for f in corpus.iterdir():  # into the page cache first, so the first build does not pay for it
        f.read_bytes()
    runs: dict[str, list[dict]] = {"other": [], "this": []}
    saved = os.environ.get("PYTHONPATH")
    try:
        for _ in range(rounds):
            for which, path in (("other", other), ("this", REPO)):
                shutil.rmtree(work / "data", ignore_errors=True)
                os.environ["PYTHONPATH"] = str(path)
                runs[which].append(measure(cmd, work))
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        shutil.rmtree(work)

    def fmt(rs):
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu_sampled", "peak_mib")}
        return (f"{med['wall']:.2f} s wall, {med['cpu_sampled']:.2f} s CPU, {med['peak_mib']:,.0f} MiB (runs: "
                + " / ".join(f"{r['wall']:.2f}" for r in rs) + " s)")

    label = f"{n_files:,} files, cold build, median of {rounds}"
    return [(label, f"{other}", fmt(runs["other"])), (label, "this checkout", fmt(runs["this"]))]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000], help="file counts")
    ap.add_argument("--against", type=Path, help="another checkout: its cold builds alternate with this one's")
    ap.add_argument("--rounds", type=int, default=None,
                    help="runs of each (the script and the cold build, or with --against the two checkouts), "
                         "alternating; the medians are shown (default 1, with --against 3)")
    args = ap.parse_args()
    if args.against and not (args.against / "datafactory" / "__init__.py").is_file():
        ap.error(f"{args.against} is not a checkout of datafactory (no datafactory/__init__.py there)")
    print("| corpus | run | result |\n|---|---|---|")
    for n in args.sizes:
        for row in (against(n, args.against.resolve(), args.rounds or 3) if args.against else run_size(n, args.rounds or 1)):
            print("| " + " | ".join(row) + " |", flush=True)
