"""decontaminate: drops (or marks) rows that overlap an evaluation set, so a model is not scored on what it trained
on. The benchmarks: KoBEST (COPA, HellaSwag, BoolQ, SentiNeg, WiC, read by the ``kobest`` source from the Hub's
JSONL or the old TSVs), any JSON Lines file of items, or a dataset built here by name (its latest version or a pinned
one: the version read is part of this step's identity, so a new version of the evaluation set makes a new version).

    - decontaminate: {columns: [instruction, history], against: [{kobest: ~/data/kobest_v1}]}
    - decontaminate: {columns: [prompt, chosen], against: [{file: evals/my_test.jsonl, fields: [question, answer]}],
                      unit: morphemes, action: mark}
    - decontaminate: {columns: [instruction], against: [{dataset: my_eval, splits: [test], fields: [prompt]}]}

Overlap is counted in n-grams of a Korean-aware unit: ``chars`` (default; n 10) are the text's letters and digits
after NFKC and lower-casing, spaces and punctuation left out, as Korean spacing varies; ``morphemes`` (n 5) are
Kiwi's morphemes (kiwipiepy). A benchmark item is one piece of text (COPA: the premise with both alternatives;
HellaSwag: the context with each ending; BoolQ: the paragraph, and the question; SentiNeg: the sentence; WiC: each
context); a row overlaps it when at least ``min_overlap`` (0.5) of the item's n-grams occur in the row's text (all
the named columns together). Items shorter than n units cannot be matched and are counted as such.

Each dropped (or marked) row is listed in the version's ``tables/contamination.parquet`` with the benchmark item it
matched; the manifest counts rows per benchmark, and the card's "Data safety" section says what was checked.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import model_validator

from datafactory.hashing import digest
from datafactory.steps.base import Params, Step, StepContext, StepError, require_text_columns, text_of

DEFAULT_N = {"chars": 10, "morphemes": 5}
KOBEST_PIECES = {
    "copa": [("premise", "alternative_1", "alternative_2")],
    "hellaswag": [("context", "ending_1"), ("context", "ending_2"), ("context", "ending_3"), ("context", "ending_4")],
    "boolq": [("paragraph",), ("question",)],
    "sentineg": [("sentence",)],
    "wic": [("context_1",), ("context_2",)],
}
_NOT_WORD = re.compile(r"[\W_]+")


class Against(Params):
    kobest: str | None = None  # a KoBEST folder (the Hub's per-task JSONL, or KoBEST_datarepo's TSVs)
    file: str | None = None  # a JSON Lines file of benchmark items
    dataset: str | None = None  # a dataset built here: NAME (its latest version) or NAME@VERSION
    splits: list[str] | None = None  # the dataset's splits to check against (default: every split)
    fields: list[str] | None = None  # the file's or dataset's text fields (default: every text field)
    name: str | None = None  # the benchmark's name in the counts (default: kobest_<task>, the file's stem, the dataset)

    @model_validator(mode="after")
    def _one(self):
        if sum(x is not None for x in (self.kobest, self.file, self.dataset)) != 1:
            raise ValueError("give one of kobest: PATH, file: PATH or dataset: NAME[@VERSION]")
        if self.splits is not None and self.dataset is None:
            raise ValueError("splits: is for a dataset: NAME")
        return self


class DecontaminateParams(Params):
    columns: list[str]
    against: list[Against]
    unit: Literal["chars", "morphemes"] = "chars"
    n: int | None = None  # default 10 characters or 5 morphemes
    min_overlap: float = 0.5  # the share of an item's n-grams a row must hold
    action: Literal["drop", "mark"] = "drop"

    @model_validator(mode="after")
    def _check(self):
        if not self.columns or not self.against:
            raise ValueError("name the columns to check and what to check them against")
        if self.n is not None and not 3 <= self.n <= 50:
            raise ValueError("n must be 3 to 50 units")
        if not 0 < self.min_overlap <= 1:
            raise ValueError("min_overlap is a share: above 0, at most 1")
        return self


def normalize(text: str) -> str:
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def units(text: str, unit: str) -> list[str]:
    if unit == "chars":
        return list(normalize(text))
    from datafactory.llm.rules import _analyzer, _lock

    kiwi = _analyzer()
    with _lock:
        return [t.form for t in kiwi.tokenize(unicodedata.normalize("NFKC", text)) if not t.tag.startswith("S")]


def grams(seq: list[str], n: int) -> set[str]:
    if len(seq) < n:
        return set()
    joiner = "" if all(len(x) == 1 for x in seq[:n]) else "\x1f"
    return {joiner.join(seq[i:i + n]) for i in range(len(seq) - n + 1)}


class Decontaminate(Step):
    name = "decontaminate"
    Params = DecontaminateParams

    def needs(self, after: set[str]) -> set[str] | None:
        return after | set(self.params.columns)

    store = None  # set by the engine (uses_datasets)

    def uses_datasets(self) -> bool:
        return any(a.dataset is not None for a in self.params.against)

    def _dataset_items(self, a: Against) -> list[dict]:
        """A built dataset's rows as items: its text fields (the messages' text of a conversational one)."""
        from datafactory.store import StoreError

        if self.store is None:
            raise StepError("decontaminate: a dataset: needs the project's store (run it in a build)")
        try:
            name, version = self.store.resolve(a.dataset)
        except StoreError as e:
            raise StepError(f"decontaminate: against dataset '{a.dataset}': {e}") from None
        folder = self.store.version_dir(name, version)
        files = {f.stem: f for f in sorted(folder.glob("*.parquet"))}
        unknown = [s for s in a.splits or [] if s not in files]
        if unknown:
            raise StepError(f"decontaminate: {name}@{version} has no split '{unknown[0]}' (splits: "
                            f"{', '.join(files) or 'none'})")
        out = []
        for split in a.splits or list(files):
            frame = pl.read_parquet(files[split])
            fields = a.fields or [c for c, t in frame.schema.items() if c != "id" and (
                t == pl.String or (isinstance(t, pl.List) and isinstance(t.inner, pl.Struct)))]
            missing = [f for f in fields if f not in frame.columns]
            if missing:
                raise StepError(f"decontaminate: {name}@{version} ({split}) has no field '{missing[0]}' (fields: "
                                f"{', '.join(frame.columns)})")
            ids = frame["id"].to_list() if "id" in frame.columns else list(range(frame.height))
            for row_id, values in zip(ids, zip(*(frame[f].to_list() for f in fields))):
                text = " ".join(text_of(v) for v in values if v)
                out.append({"benchmark": a.name or name, "item": f"{name}@{version}/{split}/{row_id}", "text": text})
        return out

    def _path(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def items(self) -> list[dict]:
        """Every benchmark item: {benchmark, item, text}."""
        if getattr(self, "_items", None) is not None:
            return self._items
        out = []
        for a in self.params.against:
            if a.kobest is not None:
                from datafactory.sources.kobest import KobestOptions, KobestSource

                path = self._path(a.kobest)
                if not path.exists():
                    raise StepError(f"decontaminate: no KoBEST at {path} (against: kobest: a folder of the Hub's "
                                    "copa/, hellaswag/, boolq/, sentineg/, wic/ JSONL)")
                frame = KobestSource("kobest", str(path), KobestOptions(), on_error="fail").read().frame
                for r in frame.iter_rows(named=True):
                    for fields in KOBEST_PIECES[r["task"]]:
                        text = " ".join(r[f] for f in fields if r.get(f))
                        out.append({"benchmark": a.name or f"kobest_{r['task']}", "item": r["id"], "text": text})
            elif a.dataset is not None:
                out += self._dataset_items(a)
            else:
                path = self._path(a.file)
                from datafactory.jsonl import BadLine, records

                try:
                    text = path.read_text("utf-8")
                except (OSError, UnicodeDecodeError) as e:
                    raise StepError(f"decontaminate: cannot read {path} ({e}); give a UTF-8 JSON Lines file") from None
                try:
                    recs = list(records(text))
                except BadLine as e:
                    raise StepError(f"decontaminate: {path} {e}") from None
                for i, rec in recs:
                    if not isinstance(rec, dict):
                        raise StepError(f"decontaminate: {path} line {i} is not a JSON object (give one item per line, "
                                        "e.g. {\"question\": ...})")
                    fields = a.fields or [k for k, v in rec.items() if isinstance(v, str)]
                    text = " ".join(str(rec[f]) for f in fields if isinstance(rec.get(f), str))
                    out.append({"benchmark": a.name or path.stem, "item": f"{path.name}#{i}", "text": text})
        self._items = out
        return out

    def identity(self) -> dict:
        """The benchmark items' text: another benchmark file is another version."""
        return {"benchmarks": digest(*(f"{x['benchmark']}\x1f{x['item']}\x1f{x['text']}" for x in self.items()))}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_text_columns(df, p.columns, "decontaminate")
        n = p.n or DEFAULT_N[p.unit]
        index: dict[str, list[int]] = {}
        sizes, too_short, items = [], Counter(), self.items()
        benchmarks = Counter(x["benchmark"] for x in items)
        for i, item in enumerate(items):
            g = grams(units(item["text"], p.unit), n)
            sizes.append(len(g))
            if not g:
                too_short[item["benchmark"]] += 1
            for x in g:
                index.setdefault(x, []).append(i)
        hits_rows, table = [], []
        columns = [df[c].to_list() for c in p.columns]
        for r, values in enumerate(zip(*columns)):
            text = "\n".join(text_of(v) for v in values)
            found = Counter(i for x in grams(units(text, p.unit), n) for i in index.get(x, ()))
            best = max(((k / sizes[i], i) for i, k in found.items()), default=(0.0, -1))
            if best[0] >= p.min_overlap:
                item = items[best[1]]
                hits_rows.append(r)
                table.append({"id": df["id"][r], "benchmark": item["benchmark"], "item": item["item"],
                              "overlap": round(best[0], 4), "item_text": item["text"][:300], "row_text": text[:300]})
        per = Counter(t["benchmark"] for t in table)
        ctx.info["decontaminate"] = {"against": sorted(benchmarks), "items": dict(sorted(benchmarks.items())),
                                     "too_short": dict(sorted(too_short.items())), "unit": p.unit, "n": n,
                                     "min_overlap": p.min_overlap, "action": p.action, "columns": p.columns,
                                     "found": dict(sorted(per.items()))}
        schema = {"id": pl.String, "benchmark": pl.String, "item": pl.String, "overlap": pl.Float64,
                  "item_text": pl.String, "row_text": pl.String}
        ctx.table("contamination", pl.DataFrame(table, schema=schema))
        hit = pl.Series([False] * df.height).scatter(hits_rows, True) if hits_rows else pl.Series([False] * df.height)
        if p.action == "mark":
            marks = [None] * df.height
            for r, t in zip(hits_rows, table):
                marks[r] = t["benchmark"]
            return df.with_columns(pl.Series("contaminated", marks, dtype=pl.String))
        for b, k in per.items():
            ctx.drop(f"contaminated_{b}", k)
        return df.filter(~hit)
