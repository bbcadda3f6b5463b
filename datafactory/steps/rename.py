"""rename: rename columns, ``{columns: {output: completion}}``. ``id`` and ``source`` cannot be renamed; a column
that exists already is an error unless it holds only nulls (another source's column, under ``sources:``)."""
from __future__ import annotations

import polars as pl
from pydantic import Field

from datafactory.steps.base import LINEAGE, Params, Step, StepContext, StepError, require_columns


class RenameParams(Params):
    columns: dict[str, str] = Field(min_length=1)


class Rename(Step):
    name = "rename"
    Params = RenameParams

    def needs(self, after: set[str]) -> set[str] | None:  # the new names too: a clash with one is an error
        back = {new: old for old, new in self.params.columns.items()}
        return {back.get(c, c) for c in after} | set(self.params.columns) | set(self.params.columns.values())

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        mapping = self.params.columns
        require_columns(df, list(mapping))
        if any(c in LINEAGE for c in [*mapping, *mapping.values()]):
            raise StepError("id and source carry lineage and cannot be renamed or overwritten")
        clash = [new for old, new in mapping.items() if new in df.columns and new not in mapping]
        # an all-null column (another source's, in a step limited by `sources:`) is simply replaced
        empty = [c for c in clash if df[c].null_count() == df.height]
        if len(empty) < len(clash):
            raise StepError(f"column '{[c for c in clash if c not in empty][0]}' exists already; drop it with `select` first")
        return df.drop(empty).rename(mapping)
