"""mix: weighted ratios across sources (or any column) to a target count.

``{total: 1500, weights: {daily: 2, hate: 1}}`` keeps 1,000 daily-conversation and 500 hate-speech rows,
each chosen by a stable hash of the row id. Rows of groups not named in ``weights`` are dropped as
``not_in_mix`` (limit the step with ``sources:`` to leave other sources alone). A group with too few rows
is an error unless ``allow_short: true``, which then takes all it has; each group that fell short is logged
and recorded (``short`` in the step's manifest entry, and a warning on the card).
"""
from __future__ import annotations

import math

import polars as pl
from pydantic import Field, field_validator

from datafactory.steps.base import Params, Step, StepContext, StepError, require_columns
from datafactory.steps.sample import take_by_hash


class MixParams(Params):
    total: int = Field(ge=1)
    weights: dict[str, float] = Field(min_length=1)
    by: str = "source"
    allow_short: bool = False

    @field_validator("weights")
    @classmethod
    def _positive(cls, v):
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return v


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` by ``weights`` (ties go to the earlier group)."""
    wsum = sum(weights.values())
    exact = {k: total * w / wsum for k, w in weights.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    rest = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[:rest]:
        counts[k] += 1
    return counts


class Mix(Step):
    name = "mix"
    Params = MixParams

    def needs(self, after: set[str]) -> set[str] | None:
        return after | {self.params.by}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_columns(df, [p.by])
        want = allocate(p.total, p.weights)
        group = pl.col(p.by).cast(pl.String)
        parts, short, taken_by = [], {}, {}
        for g, n in want.items():
            rows = df.filter(group == g)
            if len(rows) < n:
                if not p.allow_short:
                    have = {k: int((df[p.by].cast(pl.String) == k).sum()) for k in want}
                    raise StepError(f"group '{g}' has {len(rows)} rows but the mix wants {n} (wanted {want}, have {have}); "
                                    "lower `total`, add data, or set `allow_short: true`")
                short[g] = {"wanted": n, "have": len(rows)}
                ctx.warn(f"mix: {p.by} '{g}' fell short: {len(rows):,} of the {n:,} rows wanted (allow_short)")
            taken = take_by_hash(rows, n, ctx)
            taken_by[g] = len(taken)
            ctx.drop("mix_surplus", len(rows) - len(taken))
            parts.append(taken)
        ctx.drop("not_in_mix", len(df.filter((~group.is_in(list(want))).fill_null(True))))
        ctx.info["taken"] = taken_by  # rows kept per group: the ratio a user can check against the weights
        if short:
            ctx.info["short"] = short
        return pl.concat(parts, how="vertical") if parts else df.clear()
