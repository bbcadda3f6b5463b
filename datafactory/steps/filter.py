"""filter: keep rows that pass one rule (an expression, a length range, or a regex), counting the rest.

Examples::

    - filter: {expr: "intensity >= 1.0 AND is_immoral", reason: mild}     # SQL expression (polars)
    - filter: {length: {column: output, min: 2, max: 2000}}               # dropped as too_short / too_long
    - filter: {regex: {column: instruction, pattern: "https?://"}, reason: has_url}   # drop matches
    - filter: {regex: {column: output, pattern: "\\p{Hangul}", keep_matching: true}, reason: no_hangul}

A null value never passes a rule.
"""
from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict, model_validator

from datafactory.steps.base import Params, Step, StepContext, StepError, require_columns


class LengthRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    min: int | None = None
    max: int | None = None


class RegexRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    pattern: str
    keep_matching: bool = False  # default: drop the rows that match

    @model_validator(mode="after")
    def _compiles(self):
        try:  # the rule runs in polars (Rust regex syntax: \p{Hangul} works), so compile it there
            pl.Series([""]).str.contains(self.pattern)
        except Exception as e:
            raise ValueError(f"pattern does not compile: {regex_error(str(e), self.pattern)}") from None
        return self


def regex_error(text: str, pattern: str) -> str:
    """The regex engine's message in one line: what is wrong and where (its error is several lines: the pattern, a
    caret under the place, the reason)."""
    lines = [x for x in text.splitlines() if x.strip()]
    reason = next((x.split("error:", 1)[1].strip() for x in lines if x.strip().startswith("error:")), None)
    caret = next((x for x in lines if x.strip() == "^" or set(x.strip()) <= {"^", "-"} and "^" in x), None)
    where = ""
    if caret is not None:
        at = caret.index("^") - 4  # the pattern is shown indented by four spaces
        if 0 <= at <= len(pattern):
            where = f" at character {at + 1} of {pattern!r}"
    return f"{reason or lines[0]}{where}"


class FilterParams(Params):
    expr: str | None = None
    length: LengthRule | None = None
    regex: RegexRule | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _one_rule(self):
        if self.expr is not None:
            try:  # parse now, so a typo fails when the recipe loads, before any source is read
                pl.sql_expr(self.expr)
            except Exception as e:
                raise ValueError(f"expr {self.expr!r} does not parse: {str(e).splitlines()[0]}") from None
        given = [k for k in ("expr", "length", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of expr, length, regex (use one filter step per rule)")
        return self


class Filter(Step):
    name = "filter"
    Params = FilterParams

    def needs(self, after: set[str]) -> set[str] | None:
        rule = self.params.length or self.params.regex
        return None if rule is None else after | {rule.column}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        if p.expr is not None:
            kind = df.lazy().select(pl.sql_expr(p.expr).alias("_keep")).collect_schema()["_keep"]
            if kind != pl.Boolean:
                raise StepError(f"expr {p.expr!r} gives {kind} per row, not true/false: a filter keeps the rows whose "
                                "expression is true (e.g. `length(instruction) > 2`)")
            return self._keep(df, pl.sql_expr(p.expr), p.reason or "expr", ctx)
        if p.length is not None:
            rule = p.length
            require_columns(df, [rule.column])
            n = pl.col(rule.column).cast(pl.String).str.len_chars()
            if rule.min is not None:
                df = self._keep(df, n >= rule.min, p.reason or "too_short", ctx)
            if rule.max is not None:
                df = self._keep(df, n <= rule.max, p.reason or "too_long", ctx)
            if rule.min is None and rule.max is None:
                df = self._keep(df, n.is_not_null(), p.reason or f"null_{rule.column}", ctx)
            return df
        rule = p.regex
        require_columns(df, [rule.column])
        hit = pl.col(rule.column).cast(pl.String).str.contains(rule.pattern)
        return self._keep(df, hit if rule.keep_matching else ~hit, p.reason or "regex", ctx)

    @staticmethod
    def _keep(df: pl.DataFrame, keep: pl.Expr, reason: str, ctx: StepContext) -> pl.DataFrame:
        mask = df.select(keep.fill_null(False).alias("_keep"))["_keep"]
        ctx.drop(reason, len(mask) - int(mask.sum()))
        return df.filter(mask)
