"""dedup: exact deduplication on a set of columns, keeping the first occurrence.

With ``ignore_space_and_case`` two values that differ only in whitespace or letter case count as one.
"""
from __future__ import annotations

import polars as pl

from datafactory.steps.base import BOOKKEEPING, Params, Step, StepContext, require_columns


class DedupParams(Params):
    columns: list[str] | None = None  # default: every column except id, source, split and llm_calls
    ignore_space_and_case: bool = False


class Dedup(Step):
    name = "dedup"
    Params = DedupParams

    def needs(self, after: set[str]) -> set[str] | None:
        return None if self.params.columns is None else after | set(self.params.columns)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        cols = self.params.columns or [c for c in df.columns if c not in BOOKKEEPING]
        require_columns(df, cols)
        keys = []
        for c in cols:
            e = pl.col(c)
            if self.params.ignore_space_and_case and df.schema[c] == pl.String:
                e = e.str.replace_all(r"\s+", "").str.to_lowercase()
            keys.append(e.alias(f"_k{len(keys)}"))
        first = first_distinct(df.select(keys))
        ctx.drop("duplicate", len(first) - int(first.sum()))
        return df.filter(first)


def first_distinct(keys: pl.DataFrame, hash_expr: pl.Expr | None = None) -> pl.Series:
    """True for each row whose key values no earlier row has. Exact, but compared only where a 64-bit hash of the
    row repeats: comparing every row (polars' row encoding of the keys) held a copy of the key columns, a quarter
    of a large build's peak memory, and took three times as long."""
    row = pl.struct(pl.all())
    h = row.hash() if hash_expr is None else hash_expr  # another hash: the tests make collisions on purpose
    repeated = keys.select(h.is_duplicated().alias("_r"))["_r"]
    first = ~repeated
    if repeated.any():  # every row equal to another has its hash: the first of them is found among these, exactly
        where = repeated.arg_true()
        first = first.scatter(where, keys[where].select(row.is_first_distinct().alias("_f"))["_f"])
    return first.alias("_first")
