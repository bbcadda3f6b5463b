"""select: keep only the named columns (``id``, ``source`` and ``split`` are always kept)."""
from __future__ import annotations

import polars as pl
from pydantic import Field

from datafactory.steps.base import LINEAGE, Params, Step, StepContext, require_columns


class SelectParams(Params):
    columns: list[str] = Field(min_length=1)


class Select(Step):
    name = "select"
    Params = SelectParams

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        require_columns(df, self.params.columns)
        keep = [c for c in (*LINEAGE, "split") if c in df.columns and c not in self.params.columns]
        return df.select(*keep, *self.params.columns)
