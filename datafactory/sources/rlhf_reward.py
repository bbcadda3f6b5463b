"""rlhf_reward: DeepSpeed-Chat's preference format, as in yitingxie/rlhf-reward-datasets (SOURCES.md section 3).

``prompt`` holds ``\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...`` turns and ends before the final
``Assistant:``; ``chosen``/``rejected`` start with ``Assistant:``. Files: parquet (the Hub layout
``data/train-00000-of-00001-*.parquet``), JSONL or a JSON array. A prompt without any ``Human:`` marker (VAIV's
translated copies strip it) is one human turn.

Rows: ``question`` (the last human turn), ``history`` (earlier turns as ``{role, content}``, role ``user`` or
``assistant``), ``chosen`` and ``rejected`` (the response after the last ``Assistant:``, without a trailing
``<|endoftext|>``), ``raw_prompt``, and ``origin_split`` (train/test from the file name).
"""
from __future__ import annotations

import re
from collections.abc import Iterator

import polars as pl

from datafactory.sources.base import Bad, Source
from datafactory.sources.inputs import InputFile

_MARK = re.compile(r"(?:^|\n\n|(?<=\S) (?=Assistant:|Human:))[ \t]*(Human|Assistant):[ \t]?")
_TRAILING_ASSISTANT = re.compile(r"\s*Assistant:\s*$")
_EOT = "<|endoftext|>"
ROLE = {"Human": "user", "Assistant": "assistant"}


def parse_turns(prompt: str) -> list[dict[str, str]]:
    """DeepSpeed-Chat/HH prompt text -> [{role, content}], dropping an empty trailing ``Assistant:``."""
    parts = _MARK.split(_TRAILING_ASSISTANT.sub("", prompt))
    turns = []
    lead = parts[0].strip()
    if lead:
        turns.append({"role": "user", "content": lead})
    for i in range(1, len(parts) - 1, 2):
        turns.append({"role": ROLE[parts[i]], "content": parts[i + 1].strip()})
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    return turns


def parse_response(text: str) -> str:
    return text.split("Assistant:")[-1].replace(_EOT, "").strip()


class RlhfRewardSource(Source):
    kind = "rlhf_reward"
    description = "DeepSpeed-Chat/HH preference rows (prompt, chosen, rejected), e.g. yitingxie/rlhf-reward-datasets."
    license = "see the dataset card of yitingxie/rlhf-reward-datasets (licence not stated there)"
    patterns = ["*.parquet", "*.jsonl", "*.json"]
    schema = {
        "question": pl.String, "history": pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
        "chosen": pl.String, "rejected": pl.String, "raw_prompt": pl.String, "origin_split": pl.String,
    }

    def parse(self, file: InputFile) -> Iterator[dict | Bad]:
        stem = file.basename.rsplit(".", 1)[0]
        split = "test" if re.match(r"(test|eval)", stem) else "train" if stem.startswith("train") else stem
        for item in self.records(file):
            if isinstance(item, Bad):
                yield item
                continue
            i, rec = item
            missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(rec.get(k), str)]
            if missing:
                yield Bad(i, "missing_field", f"row {i} has no string '{missing[0]}'", rec)
                continue
            turns = parse_turns(rec["prompt"])
            if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"]:
                yield Bad(i, "empty_prompt", f"row {i}: the prompt has no final Human turn", rec)
                continue
            chosen, rejected = parse_response(rec["chosen"]), parse_response(rec["rejected"])
            if not chosen or not rejected:
                yield Bad(i, "empty_response", f"row {i}: {'chosen' if not chosen else 'rejected'} is empty", rec)
                continue
            yield {"_key": f"{stem}#{i}", "question": turns[-1]["content"], "history": turns[:-1],
                   "chosen": chosen, "rejected": rejected, "raw_prompt": rec["prompt"], "origin_split": split}
