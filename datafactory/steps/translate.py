"""translate: English to Korean, text by text, so a dialogue keeps its Human/Assistant turns.

    - translate: {columns: [question, chosen, rejected], turns: [history]}

Each text column is translated in place (its English stays in ``<column>_en``), and each ``turns`` column (a list
of ``{role, content}``, as ``rlhf_reward`` parses a DeepSpeed-Chat or HH prompt) has every turn's content
translated with its role kept. Identical texts are asked once. A row with any failed or empty translation is
dropped with a counted reason (or fails the build with ``on_failure: fail``).
"""
from __future__ import annotations

import polars as pl
from pydantic import Field

from datafactory.llm.types import Request
from datafactory.steps.base import StepContext, StepError, require_columns
from datafactory.steps.llm import LLMParams, LLMStep, chat, failure_reason, with_calls


class TranslateParams(LLMParams):
    role: str = "translator"
    columns: list[str] = []
    turns: list[str] = []
    prompt: str = "translate"
    keep_english: bool = True
    max_tokens: int | None = Field(default=None, ge=1)


class Translate(LLMStep):
    name = "translate"
    Params = TranslateParams

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        if not p.columns and not p.turns:
            raise StepError("give `columns` (text columns) and/or `turns` (columns of {role, content} lists) to translate")
        require_columns(df, p.columns + p.turns)
        llm = self.llm(ctx)
        sampling = {"max_tokens": p.max_tokens} if p.max_tokens else {}
        ids = df["id"].to_list()
        requests: list[Request] = []
        where: list[tuple] = []  # (row, column, turn index or None)

        def ask(row: int, col: str, turn, text: str):
            requests.append(Request(p.role, chat(self.prompt, text=text), sampling, 1,
                                    {"task": "translate", "input": text, "row": ids[row], "step": self.name}))
            where.append((row, col, turn))

        for col in p.columns:
            for row, text in enumerate(df[col].cast(pl.String).to_list()):
                if text and text.strip():
                    ask(row, col, None, text)
        for col in p.turns:
            for row, turns in enumerate(df[col].to_list()):
                for t, turn in enumerate(turns or []):
                    if (turn.get("content") or "").strip():
                        ask(row, col, t, turn["content"])
        results = llm.complete(requests, batch=p.batch)
        texts = {c: df[c].cast(pl.String).to_list() for c in p.columns}
        turns = {c: [[dict(t) for t in (v or [])] for v in df[c].to_list()] for c in p.turns}
        reasons: list[str | None] = [None] * df.height
        calls: list[list[str]] = [[] for _ in range(df.height)]
        for (row, col, turn), result in zip(where, results):
            calls[row] += result.all_keys
            reason = failure_reason(result)
            if reason:
                reasons[row] = reasons[row] or reason
                continue
            if turn is None:
                texts[col][row] = result.texts[0].strip()
            else:
                turns[col][row][turn]["content"] = result.texts[0].strip()
        out = df
        if p.keep_english:
            out = out.with_columns([pl.col(c).alias(f"{c}_en") for c in p.columns + p.turns])
        out = out.with_columns([pl.Series(c, v, dtype=pl.String) for c, v in texts.items()]
                               + [pl.Series(c, v, dtype=df.schema[c]) for c, v in turns.items()])
        return self.keep_or_fail(with_calls(out, calls), reasons, ctx)
