"""respond: roles answer each prompt, ``n`` answers per role, one row per answer.

    - respond: {roles: [teacher], input: instruction}                        # the teacher answers the instruction
    - respond: {roles: [sft], input: prompt, prompt: plain}                  # the SFT model gets its KULLM prompt as is
    - respond: {roles: [teacher, sft], per_role: {sft: {input: prompt, prompt: plain}}}   # both: RM v2/v3 pairs
    - respond: {roles: [teacher], prompt: respond_corrective, output: output}  # polite corrections of hate speech

``prompt`` names a Korean prompt file (``respond``: a friendly assistant; ``respond_corrective``: declines and
corrects hate speech; ``plain``: the input as the only message). ``history`` names a column of earlier turns
(``[{role, content}]``, e.g. translated rlhf-reward dialogues) sent before the input. ``per_role`` changes
``input``, ``prompt`` or ``history`` for one role (the SFT model gets its KULLM prompt as is, without history).

Output: one row per (prompt, role, answer): ``id`` becomes ``<id>/<role>/<i>``, ``prompt_id`` keeps the prompt's
id (``pair`` groups by it), ``response_role`` and ``response_index`` say who answered. With a single role and
``n: 1`` and ``explode: false`` the rows keep their ids and the answer lands in ``output``.
"""
from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from datafactory.llm.types import Request
from datafactory.steps.base import StepContext, require_columns
from datafactory.llm.prompts import load_prompt
from datafactory.steps.llm import LLMParams, LLMStep, chat, failure_reason, with_calls


class RoleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | None = None
    prompt: str | None = None
    history: str | None = None


class RespondParams(LLMParams):
    roles: list[str] = Field(default=["teacher"], min_length=1)
    n: int = Field(default=1, ge=1, le=32)
    input: str = "instruction"
    history: str | None = None
    prompt: str = "respond"
    output: str = "response"
    per_role: dict[str, RoleInput] = {}
    explode: bool = True
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _explode(self):
        if not self.explode and (len(self.roles) > 1 or self.n > 1):
            raise ValueError("explode: false keeps one answer per row: give one role and n: 1")
        unknown = [r for r in self.per_role if r not in self.roles]
        if unknown:
            raise ValueError(f"per_role.{unknown[0]}: not one of the roles {self.roles}")
        return self

    def for_role(self, role: str) -> tuple[str, str, str | None]:
        """(input column, prompt file, history column) of ``role``."""
        o = self.per_role.get(role, RoleInput())
        history = o.history if "history" in o.model_fields_set else self.history
        return o.input or self.input, o.prompt or self.prompt, history


class Respond(LLMStep):
    name = "respond"
    Params = RespondParams

    def __init__(self, params, base_dir=None):
        super().__init__(params, base_dir)
        self.prompts = {role: load_prompt(params.for_role(role)[1], base_dir) for role in params.roles}

    def roles(self) -> list[str]:
        return list(self.params.roles)

    def identity(self) -> dict:
        return {"prompts": self.prompts}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        inputs = {role: p.for_role(role) for role in p.roles}
        require_columns(df, sorted({c for i, _, h in inputs.values() for c in (i, h) if c}))
        llm = self.llm(ctx)
        sampling = {k: v for k, v in (("temperature", p.temperature), ("max_tokens", p.max_tokens)) if v is not None}
        ids = df["id"].to_list()
        requests = []
        for role in p.roles:
            column, _, history_column = inputs[role]
            texts = df[column].cast(pl.String).to_list()
            histories = df[history_column].to_list() if history_column else [None] * df.height
            instructions = df[p.input].cast(pl.String).to_list() if p.input in df.columns else texts
            for row_id, text, history, instruction in zip(ids, texts, histories, instructions):
                messages = chat(self.prompts[role], input=text or "")
                if history:
                    messages[-1:-1] = [{"role": t["role"], "content": t["content"]} for t in history]
                requests.append(Request(role, messages, sampling, p.n, {"task": "respond", "input": instruction or "",
                                                                        "row": row_id, "step": self.name}))
        results = llm.complete(requests, batch=p.batch)
        if not p.explode:
            reasons = [failure_reason(r) for r in results]
            out = df.with_columns(pl.Series(p.output, [r.texts[0] if not reason else None
                                                       for r, reason in zip(results, reasons)], dtype=pl.String))
            out = with_calls(out, [r.all_keys for r in results])
            return self.keep_or_fail(out, reasons, ctx)
        parts, reasons = [], []
        for j, role in enumerate(p.roles):
            block = results[j * df.height:(j + 1) * df.height]
            for i in range(p.n):
                why = [failure_reason(r) or (None if i < len(r.texts) else "missing_answer") for r in block]
                answers = [r.texts[i] if w is None else None for r, w in zip(block, why)]
                reasons += why
                part = df.with_columns(
                    pl.col("id").alias("prompt_id"),
                    (pl.col("id") + f"/{role}/{i}").alias("id"),
                    pl.Series(p.output, answers, dtype=pl.String),
                    pl.lit(role).alias("response_role"),
                    pl.lit(i, dtype=pl.Int32).alias("response_index"),
                )
                parts.append(with_calls(part, [r.all_keys for r in block]))
        return self.keep_or_fail(pl.concat(parts, how="vertical"), reasons, ctx)
