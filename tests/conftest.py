"""Shared fixtures: a throwaway project (recipes/, inputs/, data/) and helpers to write recipes and inputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datafactory.engine import Factory

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"


class Project:
    def __init__(self, root: Path):
        self.root = root
        self.recipes = root / "recipes"
        self.data = root / "data"
        self.recipes.mkdir()
        (root / "inputs").mkdir()

    def recipe(self, name: str, body: dict | str) -> Path:
        path = self.recipes / f"{name}.yaml"
        if isinstance(body, dict):
            body = yaml.safe_dump({"name": name, **body}, allow_unicode=True, sort_keys=False)
        path.write_text(body, "utf-8")
        return path

    def jsonl(self, rel: str, rows: list[dict]) -> Path:
        path = self.root / "inputs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        return path

    def factory(self, **kw) -> Factory:
        return Factory(self.data, self.recipes, **kw)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def built(project):
    """A project with the test SFT recipe built once from 50 question/answer rows: (project, BuildResult)."""
    project.jsonl("qa.jsonl", qa_rows(50))
    project.recipe("sft", sft_recipe())
    return project, project.factory().build("sft")


def columns_seen(monkeypatch) -> list[set[str]]:
    """The columns of the frame each step of later builds is given, in order (the engine's projection)."""
    from datafactory import engine

    seen: list[set[str]] = []
    real = engine.Factory._run_step
    monkeypatch.setattr(engine.Factory, "_run_step",
                        lambda self, recipe, sp, frame, *a: seen.append(set(frame.columns)) or real(self, recipe, sp, frame, *a))
    return seen


def qa_rows(n: int, start: int = 0) -> list[dict]:
    return [{"qid": f"q{i}", "question": f"질문 {i}번은 무엇인가요?", "answer": f"{i}번 답변입니다.",
             "kind": "daily" if i % 3 else "hate"} for i in range(start, start + n)]


def sft_recipe(**over) -> dict:
    body = {
        "description": "test recipe",
        "sources": {"qa": {"kind": "files", "path": "inputs/qa.jsonl",
                           "options": {"id": "qid", "fields": {"instruction": "question", "output": "answer", "kind": "kind"}}}},
        "steps": [
            {"normalize": {"columns": ["instruction", "output"]}},
            {"filter": {"length": {"column": "output", "min": 2}}},
            {"template": {}},
            {"rename": {"columns": {"output": "completion"}}},
        ],
        "output": {"format": "sft"},
        "splits": {"train": 0.8, "test": 0.2},
        "seed": 7,
    }
    body.update(over)
    return body


def read_source(kind: str, path, *, encoding: str = "utf-8", on_error: str = "fail", **options):
    """Parse ``path`` with a source kind, as a recipe would, and return its ``SourceRead``."""
    from datafactory.sources import SOURCES

    cls = SOURCES[kind]
    return cls("s", str(path), cls.Options.model_validate(options), encoding=encoding, on_error=on_error).read()


def both_paths(monkeypatch, kind: str, path, **options):
    """``read_source`` with the kind's columnar fast path, then without it (every file through ``parse``)."""
    from datafactory.sources import SOURCES

    fast = read_source(kind, path, **options)
    monkeypatch.setattr(SOURCES[kind], "parse_batch", lambda self, files: None)
    slow = read_source(kind, path, **options)
    monkeypatch.undo()
    return fast, slow
