"""template: render each row's conversation into a text column (``prompt`` by default), KULLM's unless told otherwise.

    - template: {template: kullm}                 # the seed's prompt; earlier turns go to its `### 입력:` slot
    - template: {chat_template: models/sft_v2}     # any chat template: a model folder's, a .jinja file, or `kullm`
    - template: {text: "질문: {instruction}\\n답:"}  # an inline template with {column} placeholders

The conversation is the row's ``history`` column (earlier turns, ``[{role, content}]``; absent or empty: none) and
its ``instruction``. With a text template, as KULLM's ``Prompter.generate_prompt`` does, a row with nothing for
``{input}`` takes ``prompt_no_input``; the earlier turns, one line each (``사용자: ...``), are its input (before an
``input`` column's own text, when a row has both). This is exactly what the template's chat template renders
(``datafactory/templates/chat.py``), so a model trained on these prompts is served with the same format. A chat
template renders ``history`` + the instruction (and an ``input`` after a blank line) per row, with the generation
prompt. The template's text enters the version id, and the manifest records it (and its chat template) so a trainer
never has to guess it.
"""
from __future__ import annotations

import string

import polars as pl
from pydantic import model_validator

from datafactory.steps.base import Params, Step, StepContext, StepError, require_columns
from datafactory.templates import load_template
from datafactory.templates.chat import chat_template, history_expr, load_chat_template, render as render_chat


class TemplateParams(Params):
    template: str | None = None  # a shipped name (kullm) or a JSON file path; the default is kullm
    text: str | None = None  # an inline template with {column} placeholders
    chat_template: str | None = None  # a Jinja chat template: a shipped name, a .jinja file or a model folder
    instruction: str = "instruction"  # the column read for {instruction}: the last user turn
    input: str = "input"  # the column read for {input}
    history: str = "history"  # the earlier turns, where the rows have them
    output: str = "prompt"

    @model_validator(mode="after")
    def _one(self):
        if sum(x is not None for x in (self.template, self.text, self.chat_template)) > 1:
            raise ValueError("give one of template, text or chat_template")
        if self.template is None and self.text is None and self.chat_template is None:
            self.template = "kullm"
        if self.text is not None:
            check_format(self.text, "text")
        return self


def check_format(fmt: str, what: str) -> None:
    """A template string whose braces do not parse (a lone ``{`` or ``}``) is named, with the place and the fix."""
    try:
        list(string.Formatter().parse(fmt))
    except ValueError as e:
        raise ValueError(f"{what} has a brace that opens or closes no {{field}} ({e}); write {{{{ or }}}} for a "
                         "literal brace") from None


def render(fmt: str, columns: dict[str, str | pl.Expr]) -> pl.Expr:
    """A polars expression that fills ``fmt``'s {fields} from columns (field -> column name or expression)."""
    parts: list[pl.Expr] = []
    for literal, field, _spec, _conv in string.Formatter().parse(fmt):
        if literal:
            parts.append(pl.lit(literal))
        if field is not None:
            col = columns.get(field, field)
            parts.append((pl.col(col) if isinstance(col, str) else col).cast(pl.String))
    return pl.concat_str(parts) if parts else pl.lit("")


def fields_of(fmt: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]


class Template(Step):
    name = "template"
    Params = TemplateParams

    def __init__(self, params, base_dir=None):
        super().__init__(params, base_dir)
        p = self.params
        self.jinja = self.origin = None
        if p.chat_template:
            self.jinja, self.origin = load_chat_template(p.chat_template, base_dir)
            self.tpl = {}
        else:
            self.tpl = load_template(p.template, base_dir) if p.template else {"prompt_no_input": p.text}

    def identity(self) -> dict:
        return {"template": self.tpl, "chat_template": self.jinja}

    def needs(self, after: set[str]) -> set[str] | None:
        p = self.params
        cols = {"instruction": p.instruction, "input": p.input}
        fields = {cols.get(f, f) for k in ("prompt_input", "prompt_no_input") if k in self.tpl
                  for f in fields_of(self.tpl[k])}
        return (after - {p.output}) | fields | {p.input, p.instruction, p.history}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        history = p.history in df.columns and df.schema[p.history] != pl.Null
        if history and not isinstance(df.schema[p.history], pl.List):
            raise StepError(f"column '{p.history}' holds {df.schema[p.history]}, not a list of {{role, content}} turns")
        with_history = int((df[p.history].list.len() > 0).sum()) if history else 0
        history = with_history > 0  # rows without earlier turns take the plain path (830k NIKL lines: 0.15 s less)
        out = self._chat(df, history) if self.jinja else self._text(df, history, ctx)
        if out[p.output].null_count():
            bad = out.filter(pl.col(p.output).is_null())["id"][0]
            raise StepError(f"row '{bad}' has a null {p.instruction}; the template cannot be filled (filter it out first)")
        info = {"name": p.template or ("chat" if self.jinja else "inline"), "column": p.output, **self.tpl,
                "chat_template": self.jinja if self.jinja else (chat_template(self.tpl) if "prompt_input" in self.tpl
                                                                 else None)}
        if self.origin:
            info["chat_template_from"] = self.origin
        if with_history:
            info["with_history"] = with_history
        ctx.info["template"] = {**info, **ctx.info.get("template", {})}
        return out

    def _text(self, df: pl.DataFrame, history: bool, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        no_input = self.tpl["prompt_no_input"]
        cols: dict[str, str | pl.Expr] = {"instruction": p.instruction, "input": p.input}
        require_columns(df, [c for f in fields_of(no_input) if isinstance(c := cols.get(f, f), str)])
        own = (pl.col(p.input).cast(pl.String).fill_null("") if p.input in df.columns else pl.lit(""))
        if history and "prompt_input" in self.tpl:  # the earlier turns are the input (before a row's own input)
            turns = history_expr(p.history)
            own = (pl.when(turns.str.len_chars() == 0).then(own)
                   .when(own.str.len_chars() == 0).then(turns).otherwise(turns + pl.lit("\n\n") + own))
        cols["input"] = own
        expr = render(no_input, cols)
        with_input = 0
        if "prompt_input" in self.tpl and (p.input in df.columns or history):
            has_input = own.str.len_chars() > 0
            expr = pl.when(has_input).then(render(self.tpl["prompt_input"], cols)).otherwise(expr)
            with_input = int(df.select(has_input.sum()).item())
        elif history and df.select((pl.col(p.history).list.len() > 0).any()).item():
            raise StepError(f"rows have earlier turns in '{p.history}', and the template has no input slot to hold "
                            "them (no prompt_input); use a template with one, or a chat template")
        # which variant the rows used, so the card shows the text the rows really hold
        used = {"prompt_input": with_input, "prompt_no_input": df.height - with_input}
        ctx.info["template"] = {"used": {k: n for k, n in used.items() if n}}
        return df.with_columns(expr.alias(p.output))

    def _chat(self, df: pl.DataFrame, history: bool) -> pl.DataFrame:
        p = self.params
        require_columns(df, [p.instruction])
        turns = df[p.history].to_list() if history else [None] * df.height
        extra = df[p.input].cast(pl.String).to_list() if p.input in df.columns else [None] * df.height
        prompts = []
        for before, instruction, own in zip(turns, df[p.instruction].cast(pl.String).to_list(), extra):
            if instruction is None:
                prompts.append(None)
                continue
            content = instruction + (f"\n\n{own}" if own else "")
            prompts.append(render_chat(self.jinja, [*(before or []), {"role": "user", "content": content}]))
        return df.with_columns(pl.Series(p.output, prompts, dtype=pl.String))
