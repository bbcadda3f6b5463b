"""select: keep only the named columns (``id``, ``source``, ``split`` and ``llm_calls`` are always kept)."""
from __future__ import annotations

import polars as pl
from pydantic import Field

from datafactory.steps.base import BOOKKEEPING, Params, Step, StepContext, require_columns


class SelectParams(Params):
    columns: list[str] = Field(min_length=1)


class Select(Step):
    name = "select"
    Params = SelectParams

    def needs(self, after: set[str]) -> set[str] | None:
        return set(self.params.columns)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        require_columns(df, self.params.columns)
        keep = [c for c in BOOKKEEPING if c in df.columns and c not in self.params.columns]
        return df.select(*keep, *self.params.columns)
