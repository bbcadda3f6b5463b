"""evolve: Korean Evol-Instruct (Xu et al. 2023, WizardLM, arXiv 2304.12244), one evolution round per step.

    - evolve: {methods: [constraints, deepen, concretize, reasoning, breadth]}   # stack steps for more rounds
    - respond: {roles: [teacher]}                                               # then answer the evolved ones

Each row's instruction is rewritten by the teacher with one method, picked by a stable hash of its id: in depth
(add a constraint, deepen, concretize, ask for more reasoning steps) or in breadth (a new instruction of the
same domain). The prompts are Korean (``evolve``), as lcw99/evolve-instruct ran them. Failed evolutions are
eliminated and counted, as WizardLM did: an empty or unchanged answer, one that copies the prompt's own words
(``#주어진 지시문#``...), or one too short or too long. WizardLM's last rule, dropping instructions whose answer is
an apology, is a ``filter`` after ``respond``.

Output: ``instruction`` is the evolved one, ``instruction_before`` the one it came from, ``evolution`` the method.
"""
from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from datafactory.llm.types import Request
from datafactory.steps.base import StepContext, require_columns
from datafactory.steps.llm import LLMParams, LLMStep, failure_reason, fill, with_calls

Method = Literal["constraints", "deepen", "concretize", "reasoning", "breadth"]


class EvolveParams(LLMParams):
    role: str = "teacher"
    input: str = "instruction"
    methods: list[Method] = Field(default=["constraints", "deepen", "concretize", "reasoning", "breadth"], min_length=1)
    prompt: str = "evolve"
    min_chars: int = Field(default=5, ge=1)
    max_chars: int = Field(default=1000, ge=1)


class Evolve(LLMStep):
    name = "evolve"
    Params = EvolveParams

    def message(self, method: str, instruction: str) -> str:
        if method == "breadth":
            return fill(self.prompt["breadth"], instruction=instruction)
        return fill(self.prompt["depth"], method=self.prompt["methods"][method], instruction=instruction)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_columns(df, [p.input])
        llm = self.llm(ctx)
        ranks = ctx.rank(df).to_list()
        methods = [p.methods[min(int(r * len(p.methods)), len(p.methods) - 1)] for r in ranks]
        texts = df[p.input].cast(pl.String).to_list()
        requests = [Request(p.role, [{"role": "user", "content": self.message(m, t or "")}], {}, 1,
                            {"task": "evolve", "input": t or "", "method": m, "row": i, "step": self.name})
                    for m, t, i in zip(methods, texts, df["id"].to_list())]
        results = llm.complete(requests, batch=p.batch)
        evolved, reasons = [], []
        for before, result in zip(texts, results):
            reason = failure_reason(result)
            text = result.texts[0].strip() if reason is None else None
            if reason is None:
                reason = self.eliminated(before or "", text)
            evolved.append(text if reason is None else None)
            reasons.append(reason)
        out = df.with_columns(pl.col(p.input).alias(f"{p.input}_before"), pl.Series(p.input, evolved, dtype=pl.String),
                              pl.Series("evolution", methods, dtype=pl.String))
        return self.keep_or_fail(with_calls(out, [r.all_keys for r in results]), reasons, ctx)

    def eliminated(self, before: str, after: str) -> str | None:
        p = self.params
        if " ".join(after.split()) == " ".join(before.split()):
            return "unchanged"
        if any(leak in after for leak in self.prompt.get("leaks", [])):
            return "prompt_leak"
        if len(after) < p.min_chars:
            return "too_short"
        if len(after) > p.max_chars:
            return "too_long"
        return None
