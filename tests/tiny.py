"""Tiny GPT-NeoX models and a byte-level BPE tokenizer trained on the shipped samples, built in seconds and
never downloaded: what the tests of local generation (and the trainers) run on."""
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


def tokenizer(folder: Path, vocab_size: int = 800):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS)
    fast.save_pretrained(folder)
    return fast


def causal_lm(folder: Path, seed: int = 0) -> Path:
    """A 2-layer GPT-NeoX with its tokenizer, saved to ``folder``."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tok = tokenizer(folder)
    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, max_position_embeddings=512, bos_token_id=tok.eos_token_id,
                           eos_token_id=tok.eos_token_id)
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    return folder
