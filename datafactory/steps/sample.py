"""sample: a seeded sample of ``n`` rows or a ``fraction`` of them, chosen by a stable hash of the row id.

The same ids and seed always give the same sample, whatever the row order. ``seed`` defaults to the recipe's.
"""
from __future__ import annotations

import polars as pl
from pydantic import model_validator

from datafactory.steps.base import Params, Step, StepContext


class SampleParams(Params):
    n: int | None = None
    fraction: float | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.n is None) == (self.fraction is None):
            raise ValueError("give exactly one of n, fraction")
        if self.n is not None and self.n < 0 or self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError("n must be >= 0 and fraction in (0, 1]")
        return self


def take_by_hash(df: pl.DataFrame, n: int, ctx: StepContext, seed: int | None = None) -> pl.DataFrame:
    """The ``n`` rows with the smallest hash rank (the step's, see ``StepContext.rank``), in their original order."""
    if n >= len(df):
        return df
    ranked = df.with_columns(ctx.rank(df, seed), pl.int_range(pl.len()).alias("_pos"))
    return ranked.sort("_rank").head(n).sort("_pos").drop("_rank", "_pos")


class Sample(Step):
    name = "sample"
    Params = SampleParams

    def needs(self, after: set[str]) -> set[str] | None:
        return after

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        n = p.n if p.n is not None else round(len(df) * p.fraction)
        out = take_by_hash(df, n, ctx, p.seed)
        ctx.drop("sampled_out", len(df) - len(out))
        return out
