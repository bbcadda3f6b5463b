"""respond: roles answer each prompt, ``n`` answers per role, one row per answer.

    - respond: {roles: [teacher], input: instruction}                        # the teacher answers the instruction
    - respond: {roles: [sft], input: prompt, prompt: plain}                  # the SFT model gets its KULLM prompt as is
    - respond: {roles: [teacher, sft], per_role: {sft: {input: prompt, prompt: plain}}}   # both: RM v2/v3 pairs
    - respond: {roles: [teacher], prompt: respond_corrective, output: output}  # polite corrections of hate speech

``prompt`` names a Korean prompt file (``respond``: a friendly assistant; ``respond_corrective``: declines and
corrects hate speech; ``plain``: the input as the only message). ``history`` names the column of earlier turns
(``[{role, content}]``: a NIKL dialogue's turns before the line, translated rlhf-reward dialogues; by default
``history`` where the rows have it), sent before the input. Every role answers the same conversation: the history
goes to each one, so a pair's two answers always answer the same turns (``per_role`` may change a role's ``input``
or ``prompt`` file, never its history). A role that answers another column (``input: prompt``, a prompt the
``template`` step rendered, earlier turns included) gets that text alone. A role served with the model's own chat
template (``prompt: plain``) gets the turns and the input as messages, and its server (or the ``transformers``
provider) renders them exactly as the model was trained. Each request's ``meta.conversation`` is a digest of the
turns and the input, the same for every role: lineage can show a pair's answers were asked the same thing.

Output: one row per (prompt, role, answer): ``id`` becomes ``<id>/<role>/<i>``, ``prompt_id`` keeps the prompt's
id (``pair`` groups by it), ``response_role`` and ``response_index`` say who answered. With a single role and
``n: 1`` and ``explode: false`` the rows keep their ids and the answer lands in ``output``.
"""
from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from datafactory.llm.types import Request
from datafactory.hashing import digest as _digest
from datafactory.steps.base import StepContext, StepError, require_columns
from datafactory.llm.prompts import load_prompt
from datafactory.steps.llm import LLMParams, LLMStep, chat, failure_reason, with_calls


def conversation_digest(turns: list[dict], instruction: str) -> str:
    """What a row asks, whoever answers: its earlier turns and its input."""
    return _digest("conversation", turns, instruction)[:16]


class RoleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | None = None
    prompt: str | None = None
    history: str | None = None  # refused: see _same_conversation

    @model_validator(mode="after")
    def _same_conversation(self):
        if "history" in self.model_fields_set:
            raise ValueError("a role's own history would let the roles answer different conversations (the SFT "
                             "model without the turns the teacher saw); every role gets the step's `history`. A "
                             "role that takes a rendered prompt (`input: prompt`) gets the turns inside it")
        return self


class RespondParams(LLMParams):
    roles: list[str] = Field(default=["teacher"], min_length=1)
    n: int = Field(default=1, ge=1, le=32)
    input: str = "instruction"
    history: str | None = "history"  # used where the rows have this column
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

    def for_role(self, role: str) -> tuple[str, str, bool]:
        """(input column, prompt file, whether the history goes as messages) of ``role``: the turns go with the
        step's input; a role answering another column (a rendered prompt) has them in that text."""
        o = self.per_role.get(role, RoleInput())
        column = o.input or self.input
        return column, o.prompt or self.prompt, column == self.input


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
        require_columns(df, sorted({p.input, *(c for c, _, _ in inputs.values())}))
        if p.history is not None and p.history in df.columns and not isinstance(df.schema[p.history], (pl.List, pl.Null)):
            raise StepError(f"column '{p.history}' holds {df.schema[p.history]}, not a list of {{role, content}} turns")
        llm = self.llm(ctx)
        sampling = {k: v for k, v in (("temperature", p.temperature), ("max_tokens", p.max_tokens)) if v is not None}
        ids = df["id"].to_list()
        instructions = df[p.input].cast(pl.String).to_list()
        histories = (df[p.history].to_list() if p.history is not None and p.history in df.columns
                     else [None] * df.height)
        turns = [[{"role": t["role"], "content": t["content"]} for t in h or ()] for h in histories]
        # what a row asks, stored with its requests (`trace` shows it); a dry run stores nothing
        said = ([conversation_digest(t, i or "") for t, i in zip(turns, instructions)] if not llm.dry_run
                else [""] * df.height)
        requests = []
        for role in p.roles:
            column, _, with_turns = inputs[role]
            texts = instructions if column == p.input else df[column].cast(pl.String).to_list()
            for row_id, text, before, instruction, digest in zip(ids, texts, turns, instructions, said):
                messages = chat(self.prompts[role], input=text or "")
                if with_turns and before:
                    messages[-1:-1] = before
                requests.append(Request(role, messages, sampling, p.n, {"task": "respond", "input": instruction or "",
                                                                        "conversation": digest, "row": row_id,
                                                                        "step": self.name}))
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
