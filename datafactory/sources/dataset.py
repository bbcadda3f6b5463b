"""dataset: another dataset built by this factory, by name, so recipes form a graph.

Options: ``name`` (the recipe), ``version`` (pin one; default: the version its recipe builds now, built first
if missing or outdated), ``splits`` (which splits to take; default all). Row ids keep the upstream id behind
this source's name (``prompts/daily/SDRW...``), so lineage reaches back to the original record; the upstream
split goes into ``upstream_split``.

A conversational upstream (``output: {type: conversational}``) is read back into the columns steps work on: its
``prompt`` (or ``messages``) becomes ``history`` (the turns before the last user turn) and ``instruction`` (that
turn), and an answer held as one assistant message (``completion``, ``chosen``, ``rejected``; a ``messages``
conversation's last turn as ``output``) becomes its text, so a recipe over it answers, judges and pairs as over a
standard one.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import BaseModel, field_validator

from datafactory.conversations import from_conversational
from datafactory.errors import SourceError
from datafactory.sources.base import NoOptions, Source, SourceRead
from datafactory.sources.inputs import InputFile
from datafactory.store import NAME_RE


class DatasetOptions(NoOptions):
    name: str
    version: str | None = None
    splits: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _a_dataset_name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"'{v}' is not a dataset's name (letters, digits, '.', '_', '-')")
        return v


class DatasetSource(Source):
    kind = "dataset"
    description = "Another dataset built by this factory."
    Options = DatasetOptions

    def __init__(self, name: str, path: str | None, options: BaseModel, **kw):
        super().__init__(name, path, options, **kw)
        self.version_dir: Path | None = None  # set by the engine once the upstream version is known

    def fingerprint(self, cache, defer: bool = False) -> dict:  # a version id: nothing to hash
        assert self.version_dir is not None
        return {"dataset": self.options.name, "version": self.version_dir.name}

    def inputs(self) -> list[InputFile]:
        assert self.version_dir is not None
        return [InputFile(f.name, f, None, f.name) for f in sorted(self.version_dir.glob("*.parquet"))]

    stand_in = None  # an estimate: the upstream's dry-run rows (not built yet), read instead of its files

    def read(self, on_file=None, parts=None) -> SourceRead:  # already a table: nothing to stream
        if self.stand_in is not None:
            rows = self.stand_in
            if self.options.splits and "split" in rows.columns:
                rows = rows.filter(pl.col("split").is_in(self.options.splits))
            rows = rows.rename({"split": "upstream_split"}) if "split" in rows.columns else rows
            frame = rows.rename({"source": "upstream_source"}).with_columns(
                (pl.lit(self.name + "/") + pl.col("id")).alias("id"), pl.lit(self.name).alias("source"))
            return SourceRead(frame.select("id", "source", pl.exclude("id", "source")), 0)
        files = [f.path for f in self.inputs()]
        wanted = self.options.splits
        frames = []
        for f in files:
            if wanted is None or f.stem in wanted:
                frames.append(pl.read_parquet(f).with_columns(pl.lit(f.stem).alias("upstream_split")))
            if on_file is not None:
                on_file()
        if wanted:
            missing = sorted(set(wanted) - {f.stem for f in files})
            if missing:
                raise SourceError(f"source '{self.name}': {self.options.name}@{self.version_dir.name} has no split "
                                  f"'{missing[0]}' (splits: {', '.join(f.stem for f in files)})")
        frame = from_conversational(pl.concat(frames, how="diagonal_relaxed"))
        frame = frame.rename({"source": "upstream_source"}).with_columns(
            (pl.lit(self.name + "/") + pl.col("id")).alias("id"), pl.lit(self.name).alias("source"))
        return SourceRead(frame.select("id", "source", pl.exclude("id", "source")), len(frames))

