"""Tiny GPT-NeoX models and a byte-level BPE tokenizer trained on the shipped samples, built in seconds and
never downloaded: what the tests of local generation and of the trainers run on."""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLES

EOS = "<|endoftext|>"


def corpus() -> list[str]:
    texts = []
    for line in (SAMPLES / "nikl_dialogues.txt").read_text("utf-8").splitlines():
        if "|" in line and not line.startswith(("#", "==")):
            texts.append(line.split("|", 1)[1].split("||")[0])
    for f in (SAMPLES / "llm_answers").glob("*.jsonl"):
        for rec in map(json.loads, f.read_text("utf-8").splitlines()):
            texts += [rec.get("input", "")] + list(rec.get("answers", []))
    texts.append("아래는 작업을 설명하는 명령어입니다. 요청을 적절히 완료하는 응답을 작성하세요.\n\n### 명령어:\n\n\n### 응답:\n")
    return [t for t in texts if t]


def causal_lm(folder: Path, seed: int = 0) -> Path:
    """A 2-layer GPT-NeoX with its tokenizer (vocabulary 800), saved to ``folder``."""
    from datafactory.training import tiny_gpt_neox

    return tiny_gpt_neox(folder, corpus(), vocab_size=800, seed=seed)
