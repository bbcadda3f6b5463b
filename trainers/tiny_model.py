"""A tiny GPT-NeoX for the offline loop: built from a config (random weights, about 0.3M parameters) with a
byte-level BPE tokenizer trained on a built dataset and the sample LLM answers. Nothing is downloaded. It only
shows the pipeline works end to end; with a real model folder and a GPU the same trainers train real models.

    python trainers/tiny_model.py --dataset sft_v2 --output models/tiny-gpt-neox
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from datafactory.errors import DataFactoryError
from datafactory.project import find_root
from datafactory.training import LibraryLog, models_dir, resolve_dataset, say, tiny_gpt_neox


def corpus(dataset: str) -> list[str]:
    ds = resolve_dataset(dataset)
    texts = []
    for split in ds.splits:
        rows = ds.split(split)
        for column in ("prompt", "completion", "chosen", "rejected", "instruction"):
            if column in rows.column_names:
                texts += [t for t in rows[column] if t]
    answers = (find_root() or ds.data_dir.parent) / "data" / "samples" / "llm_answers"
    for f in sorted(answers.glob("*.jsonl")):
        for line in f.read_text("utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                texts += [rec.get("input", ""), *rec.get("answers", [])]
    return [t for t in texts if t]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="sft_v2", help="a built dataset whose text trains the tokenizer (default sft_v2)")
    ap.add_argument("--output", default=None, help="default: models/tiny-gpt-neox")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab_size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="the libraries' messages on the terminal (else build.log "
                                                             "in the model's folder)")
    a = ap.parse_args(argv)
    out = a.output or models_dir() / "tiny-gpt-neox"
    try:
        texts = corpus(a.dataset)
    except DataFactoryError as e:
        raise SystemExit(f"error: {e}") from None
    log = None if a.verbose else LibraryLog()
    try:
        if log:
            log.attach(Path(out), "build.log")
        tiny_gpt_neox(out, texts, hidden=a.hidden, layers=a.layers, vocab_size=a.vocab_size, seed=a.seed)
    finally:
        if log:
            log.restore()
    say(f"{out}: a tiny GPT-NeoX built from a config (hidden {a.hidden}, {a.layers} layers, random weights) with a "
          f"BPE tokenizer trained on {len(texts)} texts of {a.dataset} and the sample answers; a toy, not a real model")


if __name__ == "__main__":
    main()
