"""judge: G-Eval (Liu et al. 2023, arXiv 2303.16634) scores of each row's answer on the criteria of its data type.

    - judge: {data_type: conversation}                  # friendliness, harmlessness, understandability,
                                                       # naturalness, context keeping, overall quality (1-5 each)
    - judge: {data_type: hatespeech, sources: [hate]}   # "harmless" = declines and corrects politely
    - judge: {data_type: translation}                   # the six, plus truthfulness

One form-filling call per (row, criterion) from the Korean prompt ``geval`` (criteria and evaluation steps as
data). Where the endpoint returns logprobs the call asks one token with ``top_logprobs=20``; the score is the
probability-weighted mean over "1".."5" (renormalised), and the distribution is kept. A first token whose
digits hold less than ``min_mass`` of the probability is a counted failure. Where the endpoint has no logprobs
(the profile says ``logprobs: false``) the call samples ``samples`` short answers and averages the ones that
parse (a reasoning judge: ``method: sample`` and ``sample_max_tokens`` with room for its thinking, which is left
out of the answer). An unparseable answer is a counted failure, never a 0 (the original G-Eval code counted it as 0).

The judge reads the conversation an answer answers: where the rows have earlier turns (``history``), the user's side
is those turns and the last one, a line each (``사용자: ...``, ``어시스턴트: ...``), so an answer that keeps the
context is not scored as if it referred to nothing.

Output: ``scores`` (a list of ``{criterion, score, dist}``, dist the five probabilities of 1..5) and
``score_total`` (their sum: the seed's rule compares sums). A row with any failed criterion is dropped with a
counted reason (``judge_low_score_mass``, ``judge_unparseable_score``, ``judge_<API reason>``).
"""
from __future__ import annotations

import math
import re
from typing import Literal

import polars as pl
from pydantic import Field

from datafactory.llm.types import Answer, Failure, Request
from datafactory.steps.base import StepContext, StepError, require_columns
from datafactory.steps.llm import LLMParams, LLMStep, fill, with_calls
from datafactory.templates.chat import history_text

def _scores_type():
    return pl.List(pl.Struct({"criterion": pl.String, "score": pl.Float64, "dist": pl.List(pl.Float64)}))
_DIGIT = re.compile(r"^\s*([1-5])(?![0-9])")


class JudgeParams(LLMParams):
    role: str = "judge"
    data_type: Literal["conversation", "hatespeech", "translation"] = "conversation"
    instruction: str = "instruction"  # the user's side, shown to the judge
    history: str | None = "history"  # the earlier turns, where the rows have them
    response: str = "response"
    prompt: str = "geval"
    method: Literal["auto", "logprobs", "sample"] = "auto"
    samples: int = Field(default=10, ge=2, le=20)
    min_mass: float = Field(default=0.5, gt=0, le=1)
    # tokens per sampled answer: a digit needs 3; a reasoning model thinks first (give it room: 2048)
    sample_max_tokens: int = Field(default=3, ge=1, le=32_768)


class Judge(LLMStep):
    name = "judge"
    Params = JudgeParams

    def __init__(self, params, base_dir=None):
        super().__init__(params, base_dir)
        types = self.prompt.get("data_types", {})
        if params.data_type not in types:
            raise StepError(f"the prompt '{params.prompt}' has no data type '{params.data_type}' ({', '.join(types)})")
        spec = types[params.data_type]
        self.criteria = {c: {**self.prompt["criteria"][c], **spec.get("override", {}).get(c, {})} for c in spec["criteria"]}

    def identity(self) -> dict:  # only this data type's criteria decide the answers
        return {"template": self.prompt["template"], "criteria": self.criteria}

    def form(self, criterion: str, instruction: str, response: str) -> str:
        c = self.criteria[criterion]
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(c["steps"], 1))
        return fill(self.prompt["template"], label=c["label"], description=c["description"], steps=steps,
                    instruction=instruction, response=response)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_columns(df, [p.instruction, p.response])
        llm = self.llm(ctx)
        method = p.method
        if method == "auto":
            method = "logprobs" if llm.supports_logprobs(p.role) else "sample"
        params = ({"max_tokens": 1, "logprobs": True, "top_logprobs": 20} if method == "logprobs" else
                  {"max_tokens": p.sample_max_tokens, "temperature": 1.0})
        n = 1 if method == "logprobs" else p.samples
        ids = df["id"].to_list()
        turns = (df[p.history].to_list() if p.history is not None and p.history in df.columns
                 else [None] * df.height)
        rows = list(zip(ids, df[p.instruction].cast(pl.String).to_list(), df[p.response].cast(pl.String).to_list(),
                        turns))
        criteria = list(self.criteria)
        requests = [Request(p.role, [{"role": "user", "content": self.form(c, said(before, ins or ""), res or "")}],
                            params, n, {"task": "judge", "input": ins or "", "response": res or "", "criterion": c,
                                        "row": row_id, "step": self.name})
                    for row_id, ins, res, before in rows for c in criteria]
        results = llm.complete(requests, batch=p.batch)
        scores, totals, reasons, calls = [], [], [], []
        k = len(criteria)
        for i in range(df.height):
            block = results[i * k:(i + 1) * k]
            parsed = [score_of(r, method, p.min_mass) for r in block]
            reason = next((x for x in parsed if isinstance(x, str)), None)
            reasons.append(reason)
            calls.append([k for r in block for k in r.all_keys])
            if reason:
                scores.append(None)
                totals.append(None)
                continue
            scores.append([{"criterion": c, "score": round(s, 4), "dist": [round(x, 4) for x in d]}
                           for c, (s, d) in zip(criteria, parsed)])
            totals.append(round(sum(s for s, _ in parsed), 4))
        out = df.with_columns(pl.Series("scores", scores, dtype=_scores_type()), pl.Series("score_total", totals, dtype=pl.Float64))
        return self.keep_or_fail(with_calls(out, calls), reasons, ctx)


def said(turns, instruction: str) -> str:
    """The user's side as the judge reads it: the instruction alone, or the conversation up to it, a line a turn."""
    if not turns:
        return instruction
    return history_text([*turns, {"role": "user", "content": instruction}])


def score_of(result: Answer | Failure, method: str, min_mass: float) -> tuple[float, list[float]] | str:
    """(expected score, distribution over 1..5), or the reason it has none."""
    if isinstance(result, Failure):
        return result.reason
    if method == "logprobs" and result.top_logprobs and result.top_logprobs[0]:
        probs = [0.0] * 5
        for t in result.top_logprobs[0]:
            token, logprob = str(t.get("token", "")).strip(), t.get("logprob")
            # a server that is OpenAI-compatible but not OpenAI may send null or -inf for an unlikely token
            if token in ("1", "2", "3", "4", "5") and isinstance(logprob, (int, float)) and not math.isnan(logprob):
                probs[int(token) - 1] += math.exp(logprob)
        mass = sum(probs)
        if mass < min_mass:
            return "low_score_mass"
        dist = [x / mass for x in probs]
        return sum((i + 1) * x for i, x in enumerate(dist)), dist
    found = [int(m.group(1)) for m in (_DIGIT.match(t) for t in result.texts) if m]  # samples, or no logprobs came
    if not found:
        return "unparseable_score"
    dist = [found.count(s) / len(found) for s in range(1, 6)]
    return sum(found) / len(found), dist
