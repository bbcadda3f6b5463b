"""Precision and recall per kind, and sentences per second on one core, of the PII detectors on
tests/data/pii_labelled.jsonl (benchmarks/pii_set.py writes it): datafactory.pii and the libraries that exist.

    python benchmarks/bench_pii.py                                    # datafactory.pii only
    /tmp/piivenv/bin/python benchmarks/bench_pii.py --libraries       # + ko-pii, ko-pii-guard (a venv that has them:
        # python3 -m venv /tmp/piivenv && /tmp/piivenv/bin/pip install ko-pii ko-pii-guard koredact)

Kinds a library finds that the set does not label (names, heights) are left out. A detection is right when its kind is the labelled one and it covers the labelled text exactly (a mask that leaves
`.kr` or a digit behind is wrong: a wrong detection and a missed span); each labelled span found at most once. koredact is not measured: its model (infobank-corp/koredact-bert-base-onnx) is downloaded from
the Hub at first use, which this project may not do.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SET = REPO / "tests" / "data" / "pii_labelled.jsonl"
KO_PII = {"RRN": "rrn", "FRN": "frn", "PHONE": "phone", "EMAIL": "email", "CARD": "card", "ACCOUNT": "account",
          "PASSPORT": "passport", "DRIVER_LICENSE": "driver", "BRN": "brn", "BUSINESS_REG": "brn", "IP": "ip",
          "IP_ADDRESS": "ip",
          "ADDRESS": "address"}
GUARD = {"KR_RRN": "rrn", "KR_FRN": "frn", "PHONE_NUMBER": "phone", "EMAIL_ADDRESS": "email", "CREDIT_CARD": "card",
         "KR_ACCOUNT": "account", "KR_PASSPORT": "passport", "KR_DRIVER_LICENSE": "driver", "KR_BRN": "brn",
         "IP_ADDRESS": "ip"}


def ours():
    sys.path.insert(0, str(REPO))
    from datafactory.pii import find

    return lambda text: [(s, e, k) for s, e, k in find(text)]


def ko_pii():
    import ko_pii as lib

    return lambda text: [(d.start, d.end, KO_PII.get(d.label, d.label.lower())) for d in lib.detect_all(text)]


def guard():
    import ko_pii_guard as lib

    g = lib.KoreanPIIGuard()
    return lambda text: [(f.start, f.end, GUARD.get(f.entity, f.entity.lower())) for f in g.analyze(text)]


def score(detect, rows) -> tuple[dict, float]:
    tp, fp, fn = Counter(), Counter(), Counter()
    t0 = time.perf_counter()
    found_all = [detect(r["text"]) for r in rows]
    seconds = time.perf_counter() - t0
    kinds = {s["kind"] for r in rows for s in r["spans"]}  # kinds the set labels (a library's names, ages, ... aside)
    found_all = [[f for f in found if f[2] in kinds] for found in found_all]
    for r, found in zip(rows, found_all):
        wanted = []
        for s in r["spans"]:
            start = r["text"].index(s["text"])
            wanted.append((start, start + len(s["text"]), s["kind"]))
        used = set()
        for s, e, k in found:
            hit = next((i for i, (ws, we, wk) in enumerate(wanted) if i not in used and wk == k and (s, e) == (ws, we)),
                       None)
            if hit is None:
                fp[k] += 1
            else:
                used.add(hit)
                tp[k] += 1
        for i, (_, _, k) in enumerate(wanted):
            if i not in used:
                fn[k] += 1
    kinds = sorted(set(tp) | set(fn) | set(fp))
    table = {k: (tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else None, tp[k] / (tp[k] + fn[k]) if tp[k] + fn[k] else None,
                 tp[k], fp[k], fn[k]) for k in kinds}
    return table, len(rows) / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--libraries", action="store_true", help="ko-pii and ko-pii-guard too, where installed")
    a = ap.parse_args()
    rows = [json.loads(line) for line in SET.read_text("utf-8").splitlines() if line.strip()]
    candidates = {"datafactory.pii": ours}
    if a.libraries:
        for name, make, module in (("ko-pii", ko_pii, "ko_pii"), ("ko-pii-guard (Presidio)", guard, "ko_pii_guard")):
            if importlib.util.find_spec(module):
                candidates[name] = make
    pos = sum(r["group"] == "positive" for r in rows)
    print(f"{SET.name}: {pos} positive, {len(rows) - pos} hard-negative sentences\n")
    for name, make in candidates.items():
        detect = make()
        detect("워밍업 010-0000-0000")
        table, rate = score(detect, rows * 5)  # five passes: a steadier rate
        print(f"### {name}: {rate:,.0f} sentences/s on one core\n")
        print("| kind | precision | recall | right | wrong | missed |\n|---|---|---|---|---|---|")
        for k, (p, r, t, f, m) in table.items():
            fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
            print(f"| {k} | {fmt(p)} | {fmt(r)} | {t // 5} | {f // 5} | {m // 5} |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
