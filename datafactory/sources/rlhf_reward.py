"""rlhf_reward: preference pairs in the layouts of DeepSpeed-Chat and Anthropic HH (docs/SOURCES.md section 3).

- yitingxie/rlhf-reward-datasets and Dahoas/rm-static: ``prompt`` holds ``\\n\\nHuman: ...\\n\\nAssistant: ...``
  turns and ends before (yitingxie) or with (rm-static) the final ``Assistant:``; ``chosen``/``rejected`` hold
  the response, with or without a leading ``Assistant:``. A prompt without any ``Human:`` marker (VAIV's
  translated copies strip it) is one human turn.
- Anthropic/hh-rlhf (``harmless-base/train.jsonl.gz``...): no ``prompt``; ``chosen`` and ``rejected`` each hold
  the whole dialogue. The prompt is their shared prefix up to its last ``\\n\\nAssistant:``; the responses are
  what follows it in each.

Files: parquet (the Hub layout ``data/train-00000-of-00001-*.parquet``), JSONL, a JSON array, gzipped or not.
Pairs with an empty response, the same response twice, or (HH) dialogues that part before their last turn are
skipped and counted: real HH files have each.

Rows: ``question`` (the last human turn), ``history`` (earlier turns as ``{role, content}``, role ``user`` or
``assistant``), ``chosen`` and ``rejected`` (the response after the last ``Assistant:``, without a trailing
``<|endoftext|>``), ``raw_prompt``, and ``origin_split`` (train/test from the file name).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

import polars as pl

from datafactory.sources.base import NOT_RECORDS, Bad, Skip, Source
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


HH_MARK = "\n\nAssistant:"


def split_dialogues(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """Anthropic HH: two whole dialogues -> (prompt up to and with the last shared ``\\n\\nAssistant:``,
    chosen response, rejected response); None when they share no assistant turn."""
    common = os.path.commonprefix([chosen, rejected])
    k = common.rfind(HH_MARK)
    if k < 0:
        return None
    cut = k + len(HH_MARK)
    clean = lambda t: t.replace(_EOT, "").strip()  # noqa: E731
    return chosen[:cut], clean(chosen[cut:]), clean(rejected[cut:])


class RlhfRewardSource(Source):
    kind = "rlhf_reward"
    description = "DeepSpeed-Chat/HH preference rows (prompt, chosen, rejected), e.g. yitingxie/rlhf-reward-datasets."
    license = "see the dataset card of yitingxie/rlhf-reward-datasets (licence not stated there)"
    patterns = ["*.parquet", "*.jsonl", "*.json", "*.jsonl.gz", "*.json.gz"]
    @property
    def schema(self) -> dict:  # a property: polars is not touched when the module is imported
        return {
            "question": pl.String, "history": pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
            "chosen": pl.String, "rejected": pl.String, "raw_prompt": pl.String, "origin_split": pl.String,
        }

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        base = file.basename.lower().removesuffix(".gz").rsplit(".", 1)[0]
        split = "test" if re.match(r"(test|eval)", base) else "train" if base.startswith("train") else base
        key = file.name.removesuffix(".gz").rsplit(".", 1)[0]  # the relative path: HH has */train.jsonl.gz
        for item in self.records(file):
            if isinstance(item, NOT_RECORDS):
                yield item
                continue
            i, rec = item
            missing = [k for k in ("chosen", "rejected") if not isinstance(rec.get(k), str)]
            if missing:
                yield Bad(i, "missing_field", f"row {i} has no string '{missing[0]}'", rec)
                continue
            if isinstance(rec.get("prompt"), str):
                prompt, chosen, rejected = rec["prompt"], parse_response(rec["chosen"]), parse_response(rec["rejected"])
            elif "prompt" in rec and rec["prompt"] is not None:
                yield Bad(i, "wrong_type", f"row {i}: 'prompt' is a {type(rec['prompt']).__name__}, not text", rec)
                continue
            else:  # Anthropic HH: whole dialogues in chosen and rejected
                parts = split_dialogues(rec["chosen"], rec["rejected"])
                if parts is None:
                    yield Bad(i, "missing_field", f"row {i} has no 'prompt', and chosen/rejected share no "
                              "'\\n\\nAssistant:' turn (not the HH layout either)", rec)
                    continue
                prompt, chosen, rejected = parts
                if "\n\nHuman:" in chosen or "\n\nHuman:" in rejected:  # they part before the last turn
                    yield Skip("dialogues_differ_before_last_turn")
                    continue
            turns = parse_turns(prompt)
            if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"]:
                yield Bad(i, "empty_prompt", f"row {i}: the prompt has no final Human turn", rec)
                continue
            if not chosen or not rejected:
                yield Skip("empty_response")
                continue
            if chosen == rejected:
                yield Skip("identical_responses")
                continue
            yield {"_key": f"{key}#{i}", "question": turns[-1]["content"], "history": turns[:-1],
                   "chosen": chosen, "rejected": rejected, "raw_prompt": prompt, "origin_split": split}
