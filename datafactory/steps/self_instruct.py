"""self_instruct: new task instructions from seed tasks (Wang et al. 2023, Self-Instruct, arXiv 2212.10560).

    - self_instruct: {batches: 4, examples: 3, generate: 5}

Each of ``batches`` requests shows the teacher ``examples`` seed instructions (picked by a stable hash per batch)
and asks for ``generate`` new ones as a numbered list (the Korean prompt ``self_instruct``). A new instruction is
kept when it is novel: its ROUGE-L F-score on characters (spaces ignored, which suits Korean) against every seed
and every instruction kept before it is at most ``similarity`` (Self-Instruct used 0.7). Instructions that need
an image or a sound, or are too short or long, are dropped too; every drop is counted.

Output: the new instructions only (the seeds are the input), one row each, ``id`` ``<source>/self-<batch>-<i>``.
"""
from __future__ import annotations

import re

import polars as pl
from pydantic import Field

from datafactory.llm.types import Request
from datafactory.steps.base import StepContext, require_columns
from datafactory.steps.llm import LLMParams, LLMStep, failure_reason, fill

_NUMBER = re.compile(r"^\s*(\d+)\s*[.)]\s*")
_NEEDS_MEDIA = re.compile(r"이미지|사진|그림을 보고|동영상|영상을 보고|소리를 듣고|음성 파일|첨부")


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 on characters, spaces ignored."""
    x, y = a.replace(" ", ""), b.replace(" ", "")
    if not x or not y:
        return 0.0
    prev = [0] * (len(y) + 1)
    for cx in x:
        cur = [0]
        for j, cy in enumerate(y):
            cur.append(prev[j] + 1 if cx == cy else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(x) + len(y))


def parse_list(text: str) -> list[str]:
    """The numbered items of an answer that continues "1." (the prompt's last line)."""
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    if lines and not _NUMBER.match(lines[0]):
        lines[0] = "1. " + lines[0]
    return [_NUMBER.sub("", x).strip() for x in lines if _NUMBER.match(x)]


class SelfInstructParams(LLMParams):
    role: str = "teacher"
    input: str = "instruction"
    batches: int = Field(default=4, ge=1, le=10_000)
    examples: int = Field(default=3, ge=1, le=20)
    generate: int = Field(default=5, ge=1, le=50)
    similarity: float = Field(default=0.7, gt=0, le=1)
    min_chars: int = Field(default=5, ge=1)
    max_chars: int = Field(default=300, ge=1)
    prompt: str = "self_instruct"


class SelfInstruct(LLMStep):
    name = "self_instruct"
    Params = SelfInstructParams

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_columns(df, [p.input])
        llm = self.llm(ctx)
        seeds = [s for s in df[p.input].cast(pl.String).to_list() if s and s.strip()]
        source = df["source"][0] if df.height else "self"
        requests = []
        for b in range(p.batches):
            ranks = ctx.rank(df.with_columns((pl.col("id") + f"#{b}").alias("id"))).to_list()
            picked = [df[p.input][i] for i in sorted(range(df.height), key=ranks.__getitem__)[:p.examples]]
            examples = "\n".join(f"{i}. {x}" for i, x in enumerate(picked, 1))
            requests.append(Request(p.role, [{"role": "user", "content": fill(self.prompt["template"], n=str(p.generate),
                                                                           examples=examples)}],
                                    {}, 1, {"task": "self_instruct", "input": examples, "row": f"batch {b}", "step": self.name}))
        results = llm.complete(requests, batch=p.batch)
        kept: list[dict] = []
        for b, result in enumerate(results):
            reason = failure_reason(result)
            if reason:
                ctx.drop(f"self_instruct_{reason}", 1)
                continue
            for i, text in enumerate(parse_list(result.texts[0])):
                why = self.rejected(text, seeds + [k["instruction"] for k in kept])
                if why:
                    ctx.drop(f"self_instruct_{why}", 1)
                    continue
                kept.append({"id": f"{source}/self-{b}-{i}", "source": source, "instruction": text,
                             "self_instruct_batch": b, "llm_calls": result.all_keys})
        ctx.drop("seed_task", df.height)  # the seeds themselves are not output
        schema = {"id": pl.String, "source": pl.String, "instruction": pl.String, "self_instruct_batch": pl.Int32,
                  "llm_calls": pl.List(pl.String)}
        out = pl.DataFrame(kept, schema=schema)
        return out.rename({"instruction": p.input}) if p.input != "instruction" else out

    def rejected(self, text: str, earlier: list[str]) -> str | None:
        p = self.params
        if not p.min_chars <= len(text) <= p.max_chars:
            return "length"
        if _NEEDS_MEDIA.search(text):
            return "needs_media"
        if any(rouge_l(text, e) > p.similarity for e in earlier):
            return "near_duplicate"
        return None
