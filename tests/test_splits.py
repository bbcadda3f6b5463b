"""Splits are representative: each use of the row hash is independent, so whatever `mix` or `sample` kept, every
source gets its share of each split; `stratify_by` makes the shares exact; empty splits are explained."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from datafactory.steps import STEPS
from datafactory.steps.base import StepContext
from datafactory.steps.split import assign_stratified
from tests.conftest import sft_recipe


def mixed_rows(n_daily: int, n_evol: int) -> list[dict]:
    rows = [{"qid": f"d{i}", "question": f"일상 질문 {i}", "answer": f"일상 답변 {i}번", "kind": "daily"} for i in range(n_daily)]
    rows += [{"qid": f"e{i}", "question": f"진화 질문 {i}", "answer": f"진화 답변 {i}번", "kind": "evol"} for i in range(n_evol)]
    return rows


def two_sources(project, n_daily: int, n_evol: int, **over) -> dict:
    rows = mixed_rows(n_daily, n_evol)
    project.jsonl("daily.jsonl", [r for r in rows if r["kind"] == "daily"])
    project.jsonl("evol.jsonl", [r for r in rows if r["kind"] == "evol"])
    spec = {"kind": "files", "options": {"id": "qid", "fields": {"instruction": "question", "output": "answer"}}}
    body = sft_recipe(sources={"daily": {**spec, "path": "inputs/daily.jsonl"}, "evol": {**spec, "path": "inputs/evol.jsonl"}},
                      **over)
    return body


def shares(frame: pl.DataFrame) -> dict[str, float]:
    c = Counter(frame["source"].to_list())
    return {k: v / frame.height for k, v in c.items()}


def test_after_mix_to_a_fraction_test_holds_each_source_in_proportion(project):
    """The seed's mix (1,495 : 476) from 3,000 rows per source: the kept rows are the smallest hashes of the mix;
    with one shared hash the split then sent nearly all of them to train (train 545, test 6 on sft_v1)."""
    body = two_sources(project, 3000, 3000, splits={"train": 0.9, "test": 0.1})
    body["steps"].insert(2, {"mix": {"total": 1971, "weights": {"daily": 1495, "evol": 476}}})
    project.recipe("sft", body)
    res = project.factory().build("sft")
    train = pl.read_parquet(project.data / "sft" / res.version / "train.parquet")
    test = pl.read_parquet(project.data / "sft" / res.version / "test.parquet")
    assert 150 <= test.height <= 250  # about 10% of 1,971
    overall = shares(pl.concat([train, test]))
    for source, share in shares(test).items():
        assert abs(share - overall[source]) < 0.08, (source, share, overall[source])
    assert set(shares(test)) == {"daily", "evol"}
    assert not res.manifest["warnings"]


def test_sample_then_split_are_independent(project):
    body = two_sources(project, 2000, 0, splits={"train": 0.5, "test": 0.5})
    body["sources"].pop("evol")
    body["steps"].insert(2, {"sample": {"fraction": 0.1}})
    project.recipe("sft", body)
    m = project.factory().build("sft").manifest
    assert 70 <= m["splits"]["test"] <= 130  # half of 200, not 0


def test_two_sample_steps_do_not_repeat_each_other():
    """Two `sample` steps of the same seed pick independently (their salts differ by position)."""
    df = pl.DataFrame({"id": [f"s/{i}" for i in range(1000)], "source": ["s"] * 1000})
    cls = STEPS["sample"]
    first = cls(cls.Params(fraction=0.5)).apply(df, StepContext(seed=1, work_dir=Path("/x"), salt="sample#0"))
    second = cls(cls.Params(fraction=0.5)).apply(first, StepContext(seed=1, work_dir=Path("/x"), salt="sample#1"))
    assert 200 <= second.height <= 300  # a repeated hash would keep all 500


def test_stratified_split_is_exact_and_gives_every_source_every_split(project):
    body = two_sources(project, 95, 7, splits={"train": 0.9, "test": 0.1}, stratify_by="source")
    project.recipe("sft", body)
    res = project.factory().build("sft")
    test = pl.read_parquet(project.data / "sft" / res.version / "test.parquet")
    assert Counter(test["source"].to_list()) == {"daily": 9, "evol": 1}  # 9.5 of 95 (the tie goes to train), 1 of 7
    assert res.manifest["recipe"]["stratify_by"] == "source"


def test_stratified_counts_are_shared_by_group_size():
    ranks = [i / 100 for i in range(100)]
    groups = ["a"] * 75 + ["b"] * 25
    names = assign_stratified(ranks, groups, {"test": 20, "train": 1.0})
    assert Counter(zip(groups, names)) == {("a", "test"): 15, ("b", "test"): 5, ("a", "train"): 60, ("b", "train"): 20}


def test_stratify_by_needs_splits(project):
    from datafactory.errors import RecipeError

    project.jsonl("qa.jsonl", [])
    project.recipe("sft", sft_recipe(splits=None, stratify_by="source"))
    with pytest.raises(RecipeError, match="stratify_by needs splits"):
        project.factory().plan("sft")


def test_empty_split_warning_says_why(project):
    body = two_sources(project, 3, 0, splits={"train": 0.99, "test": 0.01})
    body["sources"].pop("evol")
    project.recipe("sft", body)
    logs = []
    m = project.factory(log=logs.append).build("sft").manifest
    assert m["splits"] == {"train": 3}
    warning = next(w for w in m["warnings"] if "split 'test' received no rows" in w)
    assert "about 0.0 expected" in warning and "give it a count" in warning and "larger fraction" not in warning
    assert any(warning in line for line in logs)


def test_a_source_missing_from_a_split_is_reported(project):
    """Rows that reach the split already chosen by their id (here: an upstream filter on the same hash would
    do it) are caught: a source with many rows and none in test is a warning, with the cure."""
    body = two_sources(project, 200, 200, splits={"train": 0.5, "test": 0.5})
    # keep only the evol rows that the split would send to train: a stand-in for a correlated selection
    from datafactory.steps.base import hash_rank

    ids = pl.DataFrame({"id": [f"evol/e{i}" for i in range(200)]})
    train_only = [i for i, r in zip(ids["id"], hash_rank(ids, 7, "split#0")) if r < 0.5]
    body["steps"].insert(0, {"filter": {"expr": "source = 'daily' OR id IN (" + ",".join(f"'{i}'" for i in train_only) + ")"}})
    project.recipe("sft", body)
    m = project.factory().build("sft").manifest
    assert any(w.startswith(f"source 'evol' has none of its {len(train_only)} rows in split 'test'") and "stratify_by" in w
               for w in m["warnings"])


def test_split_files_hold_each_split_in_order_in_bounded_row_groups(tmp_path):
    """write_splits: every row of a split in table order, row groups of the asked size, plain Arrow string types
    (not polars' large strings), dictionary encoding only where values repeat, min/max statistics only for
    columns that are not text."""
    import pyarrow.parquet as pq

    from datafactory.store import write_splits

    n = 10_000
    body = pl.DataFrame({"id": [f"r{i}" for i in range(n)], "source": ["daily"] * n, "n": list(range(n))})
    split = pl.Series(["train", "test", "train", "validation"] * (n // 4))
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "test", "validation")}
    write_splits(body, split, paths, group_rows=1_000)
    for s, path in paths.items():
        assert pl.read_parquet(path).equals(body.filter(split == s))
        meta = pq.ParquetFile(path).metadata
        assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [1_000] * (meta.num_rows // 1_000) + (
            [meta.num_rows % 1_000] if meta.num_rows % 1_000 else [])
        schema = pq.read_schema(path)
        assert str(schema.field("id").type) == "string" and str(schema.field("n").type) == "int64"
        encodings = {c: meta.row_group(0).column(i).encodings for i, c in enumerate(body.columns)}
        assert "RLE_DICTIONARY" in encodings["source"] and "RLE_DICTIONARY" not in encodings["id"]
        stats = {c: meta.row_group(0).column(i).is_stats_set for i, c in enumerate(body.columns)}
        assert stats == {"id": False, "source": False, "n": True}
    write_splits(body, None, {"train": tmp_path / "all.parquet"}, group_rows=4_096)
    assert pl.read_parquet(tmp_path / "all.parquet").equals(body)
