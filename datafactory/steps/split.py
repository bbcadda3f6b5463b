"""split: deterministic train/test (or any) split by a stable hash of the row id; adds a ``split`` column.

Usually declared once as the recipe's top-level ``splits:``, which the engine runs as the last step.
Fractions cut the hash space (a row's split depends on its id alone, so counts are close to, not exactly,
the fractions); a count (``test: 40``) takes exactly that many rows first.
"""
from __future__ import annotations

import polars as pl
from pydantic import Field, field_validator

from datafactory.steps.base import Params, Step, StepContext, hash_rank


def check_splits(v: dict[str, float | int]) -> dict[str, float | int]:
    fractions = {k: x for k, x in v.items() if isinstance(x, float)}
    counts = {k: x for k, x in v.items() if isinstance(x, int)}
    if any(x < 1 for x in counts.values()) or any(not 0 < x <= 1 for x in fractions.values()):
        raise ValueError("each split is a fraction in (0, 1] or a row count >= 1")
    if not fractions:
        raise ValueError("at least one split must be a fraction that takes the rest, e.g. {train: 1.0, test: 40}")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"the fractions add up to {sum(fractions.values()):g}, not 1")
    return v


class SplitParams(Params):
    splits: dict[str, float | int] = Field(min_length=1)

    _check = field_validator("splits")(classmethod(lambda cls, v: check_splits(v)))


def assign_splits(ranks: list[float], splits: dict[str, float | int]) -> list[str]:
    """Counts take the rows with the smallest ranks; fractions cut the hash space at fixed thresholds, so a
    row's split depends on its id alone and adding rows never moves an existing row (counts excepted)."""
    names: list[str] = [""] * len(ranks)
    order = sorted(range(len(ranks)), key=ranks.__getitem__)
    pos = 0
    for name, count in ((k, v) for k, v in splits.items() if isinstance(v, int)):
        for i in order[pos:pos + count]:
            names[i] = name
        pos += count
    bounds, acc = [], 0.0
    for name, frac in ((k, v) for k, v in splits.items() if isinstance(v, float)):
        acc += frac
        bounds.append((acc, name))
    for i in order[pos:]:
        names[i] = next((name for bound, name in bounds if ranks[i] < bound), bounds[-1][1])
    return names


class Split(Step):
    name = "split"
    Params = SplitParams

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        names = assign_splits(hash_rank(df, ctx.seed).to_list(), self.params.splits)
        return df.with_columns(pl.Series("split", names, dtype=pl.String))
