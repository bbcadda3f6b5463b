"""The engine contract that LLM steps build on: a step keeps row-by-row work in ``ctx.work_dir`` (stable for
its step key), so a build killed mid-step resumes without redoing rows; ``identity()`` enters the version id."""
from __future__ import annotations

import json

import polars as pl
import pytest

from datafactory.steps import STEPS
from datafactory.steps.base import Params, Step
from tests.conftest import qa_rows, sft_recipe

CALLS: list[str] = []
KILL_AFTER: list[int] = []  # a kill switch outside the step's parameters, so it does not change the step key


class ShoutParams(Params):
    model: str = "m1"


class Shout(Step):
    """A stand-in for a paid call per row: each answer is appended to a JSONL file as it arrives."""

    name = "shout"
    Params = ShoutParams

    def identity(self) -> dict:
        return {"model": self.params.model}

    def apply(self, df, ctx):
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        store = ctx.work_dir / "answers.jsonl"
        done = {}
        if store.exists():
            done = {r["id"]: r["out"] for r in map(json.loads, store.read_text("utf-8").splitlines())}
        out = []
        with open(store, "a", encoding="utf-8") as f:
            for row_id, text in zip(df["id"], df["output"]):
                if row_id not in done:
                    if KILL_AFTER and len(CALLS) >= KILL_AFTER[0]:
                        raise KeyboardInterrupt("killed")
                    CALLS.append(row_id)
                    done[row_id] = text + "!"
                    f.write(json.dumps({"id": row_id, "out": done[row_id]}, ensure_ascii=False) + "\n")
                    f.flush()
                out.append(done[row_id])
        return df.with_columns(pl.Series("output", out))


@pytest.fixture
def shout(monkeypatch, project):
    monkeypatch.setitem(STEPS, "shout", Shout)
    CALLS.clear()
    project.jsonl("qa.jsonl", qa_rows(20))
    return project


def recipe(**params):
    body = sft_recipe()
    body["steps"].insert(2, {"shout": params})
    return body


def test_killed_step_resumes_without_repeating_rows(shout):
    shout.recipe("sft", recipe())
    KILL_AFTER.append(7)
    try:
        with pytest.raises(KeyboardInterrupt):
            shout.factory().build("sft")
    finally:
        KILL_AFTER.clear()
    assert len(CALLS) == 7 and not (shout.data / "sft" / "latest").exists()
    res = shout.factory().build("sft")
    assert len(CALLS) == 20 and len(set(CALLS)) == 20  # 13 more calls, none repeated
    assert all(c.endswith("!") for c in pl.read_parquet(shout.data / "sft" / res.version / "train.parquet")["completion"])


def test_identity_enters_the_version(shout):
    shout.recipe("sft", recipe(model="m1"))
    a = shout.factory().plan("sft").version
    shout.recipe("sft", recipe(model="m2"))
    b = shout.factory().plan("sft").version
    assert a != b
