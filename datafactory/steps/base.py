"""The step base. A step is a pure function of its input frame and parameters.

Caching, counting, timing, progress and resume live in the engine: a step only transforms a frame and says
why it dropped rows (``ctx.drop(reason, n)``). Rows a step removes without a stated reason are counted by the
engine under the step's name, so every removed row has a counted reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict

from datafactory.errors import DataFactoryError

LINEAGE = ("id", "source")  # every row carries these; steps may not remove or rename them


class StepError(DataFactoryError):
    """A step cannot run with these parameters on this data. The engine adds the recipe key."""


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class StepContext:
    seed: int
    work_dir: Path  # persistent per step version: where a resumable step keeps what it has done
    dropped: Counter = field(default_factory=Counter)
    info: dict[str, Any] = field(default_factory=dict)  # goes into the manifest (e.g. the template used)
    progress: Any = None  # advance(total): a row-by-row step calls it per row done, for the progress bar

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] += int(n)


class Step:
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    version: ClassVar[int] = 1  # bump for a change of behaviour; the module's source hash is counted too

    def __init__(self, params: BaseModel):
        self.params = params

    def identity(self) -> dict:
        """What besides the parameters and code enters the version id (a template's text, later a model)."""
        return {}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        raise NotImplementedError


def require_columns(df: pl.DataFrame, columns: list[str] | tuple[str, ...]) -> None:
    from datafactory.errors import did_you_mean

    for c in columns:
        if c not in df.columns:
            hint = did_you_mean(c, df.columns)
            raise StepError(f"no column '{c}'" + (f"; {hint}" if hint else "") + f" (columns: {', '.join(df.columns)})")


def string_columns(df: pl.DataFrame) -> list[str]:
    return [c for c, t in df.schema.items() if t == pl.String and c not in LINEAGE]


def hash_rank(df: pl.DataFrame, seed: int, key: str = "id") -> pl.Series:
    """A number in [0, 1) per row from its id and the seed: sampling and splitting by it are deterministic,
    independent of row order, and adding rows never moves an existing row to another split."""
    from datafactory.hashing import unit_hashes

    return pl.Series("_rank", unit_hashes(df[key].cast(pl.String).to_list(), seed), dtype=pl.Float64)
