"""The seed's SFT job as a plain script, written the way the seed wrote it: what bench_scale.py compares against.

    python benchmarks/plain_nikl.py CORPUS_FOLDER OUT.parquet

``json.load`` per file, a Python loop per utterance, the ``re.sub`` cleaning rules (datafactory.korean: the same
rules, so both give the same pairs), turns of one speaker joined, first-speaker pairs, NFC + whitespace
normalisation, exact dedup, the KULLM template, a 95/5 train/test split by a hash of the row id, pandas at the end.
"""
import glob
import hashlib
import json
import os
import re
import sys
import unicodedata

import pandas as pd

from datafactory.korean import clean_utterance, drop_fragments

KULLM = ("아래는 작업을 설명하는 명령어입니다. 요청을 적절히 완료하는 응답을 작성하세요.\n\n"
         "### 명령어:\n{instruction}\n\n### 응답:\n")
CONTROL = re.compile(r"[\u200b-\u200f\u2060\ufeff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def norm(s):
    s = CONTROL.sub("", unicodedata.normalize("NFC", s))
    s = re.sub(r" *\n *", "\n", re.sub(r"[ \t\u00a0\u3000]+", " ", s))
    return s.strip()


def main(folder, out):
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "SDRW*.json"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for doc in data["document"]:
            turns = []
            for u in doc["utterance"]:
                text = u["form"]
                if "-" in u.get("original_form", ""):
                    text = drop_fragments(text, u["original_form"])
                text = clean_utterance(text)
                if not text:
                    continue
                if turns and turns[-1][0] == u["speaker_id"]:
                    turns[-1][1].append(text)
                else:
                    turns.append((u["speaker_id"], [text]))
            for k in range(len(turns) - 1):
                if turns[k][0] == turns[0][0]:
                    rows.append({"id": f"daily/{doc['id']}#{k}", "instruction": " ".join(turns[k][1]),
                                 "output": " ".join(turns[k + 1][1]), "topic": doc["metadata"]["topic"]})
    df = pd.DataFrame(rows)
    df["instruction"] = df["instruction"].map(norm)
    df["output"] = df["output"].map(norm)
    df = df.drop_duplicates(subset=["instruction", "output"])
    df["prompt"] = df["instruction"].map(lambda s: KULLM.format(instruction=s))
    df["split"] = df["id"].map(lambda s: "train" if int(hashlib.md5(s.encode()).hexdigest()[:8], 16) / 2**32 < 0.95 else "test")
    df = df.rename(columns={"output": "completion"})[["id", "prompt", "completion", "instruction", "split"]]
    df.to_parquet(out)
    print(len(df))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
