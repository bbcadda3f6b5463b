"""template: render a prompt template into a column (``prompt`` by default), KULLM's unless told otherwise.

As KULLM's ``Prompter.generate_prompt`` does, a row whose ``input`` is empty or null takes ``prompt_no_input``.
``text:`` gives an inline template instead, with ``{column}`` placeholders. The template's text enters the
version id, and the engine records it in the manifest so a trainer never has to guess it.
"""
from __future__ import annotations

import string

import polars as pl
from pydantic import model_validator

from datafactory.steps.base import Params, Step, StepContext, StepError, require_columns
from datafactory.templates import load_template


class TemplateParams(Params):
    template: str | None = None  # a shipped name (kullm) or a JSON file path; the default is kullm
    text: str | None = None  # an inline template with {column} placeholders
    instruction: str = "instruction"  # the column read for {instruction}
    input: str = "input"  # the column read for {input}
    output: str = "prompt"

    @model_validator(mode="after")
    def _one(self):
        if self.template is not None and self.text is not None:
            raise ValueError("give template or text, not both")
        if self.template is None and self.text is None:
            self.template = "kullm"
        return self


def render(fmt: str, columns: dict[str, str]) -> pl.Expr:
    """A polars expression that fills ``fmt``'s {fields} from columns (field -> column name)."""
    parts: list[pl.Expr] = []
    for literal, field, _spec, _conv in string.Formatter().parse(fmt):
        if literal:
            parts.append(pl.lit(literal))
        if field is not None:
            parts.append(pl.col(columns.get(field, field)).cast(pl.String))
    return pl.concat_str(parts) if parts else pl.lit("")


def fields_of(fmt: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]


class Template(Step):
    name = "template"
    Params = TemplateParams

    def __init__(self, params, base_dir=None):
        super().__init__(params, base_dir)
        p = self.params
        self.tpl = load_template(p.template, base_dir) if p.template else {"prompt_no_input": p.text}

    def identity(self) -> dict:
        return {"template": self.tpl}

    def needs(self, after: set[str]) -> set[str] | None:
        p = self.params
        cols = {"instruction": p.instruction, "input": p.input}
        fields = {cols.get(f, f) for k in ("prompt_input", "prompt_no_input") if k in self.tpl
                  for f in fields_of(self.tpl[k])}
        return (after - {p.output}) | fields | {p.input, p.instruction}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        cols = {"instruction": p.instruction, "input": p.input}
        no_input = self.tpl["prompt_no_input"]
        require_columns(df, [cols.get(f, f) for f in fields_of(no_input)])
        expr = render(no_input, cols)
        with_input = 0
        if "prompt_input" in self.tpl and p.input in df.columns:
            has_input = pl.col(p.input).cast(pl.String).fill_null("").str.len_chars() > 0
            expr = pl.when(has_input).then(render(self.tpl["prompt_input"], cols)).otherwise(expr)
            with_input = int(df.select(has_input.sum()).item())
        # which variant the rows used, so the card shows the text the rows really hold
        used = {"prompt_input": with_input, "prompt_no_input": df.height - with_input}
        ctx.info["template"] = {"name": p.template or "inline", "column": p.output, **self.tpl,
                                "used": {k: n for k, n in used.items() if n}}
        out = df.with_columns(expr.alias(p.output))
        if out[p.output].null_count():
            bad = out.filter(pl.col(p.output).is_null())["id"][0]
            raise StepError(f"row '{bad}' has a null {p.instruction}; the template cannot be filled (filter it out first)")
        return out
