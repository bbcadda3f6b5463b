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
BOOKKEEPING = (*LINEAGE, "split", "llm_calls")  # kept by `select`, ignored by `dedup`: not the row's content


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
    progress: Any = None  # advance(n=1): a row-by-row step calls it per row done, for the progress bar
    salt: str = ""  # the step's purpose and position ("mix#0"): its row hashes are independent of other steps'
    llm: Any = None  # an LLM step's view of the LLM layer (datafactory.llm.client.StepLLM), from the engine
    warnings: list[str] = field(default_factory=list)  # logged by the engine, kept in the manifest and the card
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # published beside the dataset: tables/<name>.parquet

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] += int(n)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def table(self, name: str, frame: pl.DataFrame) -> None:
        """A table to publish beside the dataset (what a step dropped and why, row by row): cached with the step."""
        self.tables[name] = frame

    def rank(self, df: pl.DataFrame, seed: int | None = None) -> pl.Series:
        """This step's hash rank of each row (see ``hash_rank``), salted with the step's purpose and position."""
        return hash_rank(df, self.seed if seed is None else seed, self.salt)


class Step:
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    version: ClassVar[int] = 1  # bump for a change of behaviour; the module's source hash is counted too
    cache: ClassVar[bool] = False  # keep this step's output in the step cache (costly to redo); LLM steps always are

    def __init__(self, params: BaseModel, base_dir: Path | None = None):
        self.params = params
        self.base_dir = base_dir  # the project root: relative paths in parameters start here

    def identity(self) -> dict:
        """What besides the parameters and code enters the version id (a template's text, a prompt)."""
        return {}

    def needs(self, after: set[str]) -> set[str] | None:
        """The columns this step reads, given those wanted after it: lets the engine drop every other column
        right after the sources (projection pushdown). ``None``: it may read any column (no dropping)."""
        return None

    def uses_labels(self) -> bool:
        """Whether the step takes the human labels of the data folder's label store: the engine then sets
        ``human_rows`` (the live labels) and ``dataset`` (the recipe's name) before asking ``identity()``."""
        return False

    def uses_datasets(self) -> bool:
        """Whether the step reads datasets built in the store by name: the engine then sets ``store`` before asking
        ``identity()`` (which must name the versions read, so a new version of them is a new version here)."""
        return False

    def roles(self) -> list[str]:
        """The LLM roles the step asks (the engine adds each role's model identity to the step key)."""
        return []

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        raise NotImplementedError


def require_columns(df: pl.DataFrame, columns: list[str] | tuple[str, ...]) -> None:
    from datafactory.errors import did_you_mean

    for c in columns:
        if c not in df.columns:
            hint = did_you_mean(c, df.columns)
            raise StepError(f"no column '{c}'" + (f"; {hint}" if hint else "") + f" (columns: {', '.join(df.columns)})")


def text_of(value) -> str:
    """The text in a cell: a string, or a conversation's messages' contents one per line (None: '')."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("content") or "")
    if isinstance(value, list):
        return "\n".join(text_of(v) for v in value)
    return ""


def require_text_columns(df: pl.DataFrame, columns: list[str], step: str) -> None:
    """Each of ``columns`` is there and holds text: a string, or a list (of messages or strings)."""
    require_columns(df, columns)
    for c in columns:
        dtype = df.schema[c]
        if not (dtype == pl.String or isinstance(dtype, pl.List)):
            raise StepError(f"{step}: column '{c}' is {dtype}, not text or a list of messages; name the text columns")


def string_columns(df: pl.DataFrame) -> list[str]:
    return [c for c, t in df.schema.items() if t == pl.String and c not in LINEAGE]


def hash_rank(df: pl.DataFrame, seed: int, salt: str, key: str = "id") -> pl.Series:
    """A number in [0, 1) per row from its id, the seed and a salt: sampling and splitting by it are
    deterministic, independent of row order, and adding rows never moves an existing row to another split.

    The salt names the use (``mix#0``, ``split#0``). Without it, a ``mix`` that keeps the smallest hashes and a
    ``split`` that sends the smallest hashes to ``train`` would agree, and nearly every kept row would land in
    ``train``: each use of the hash must be independent of the others."""
    from datafactory.hashing import unit_hash_expr

    return df.select(unit_hash_expr(key, f"{seed}\x1e{salt}").alias("_rank")).to_series()
