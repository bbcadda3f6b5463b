"""A version id covers all the code that made it: the modules a step or source runs, not its class's module alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLES

from datafactory.code_identity import code_identity
from datafactory.sources import SOURCES
from datafactory.steps import STEPS


def test_a_source_or_step_counts_the_modules_it_imports_and_nothing_it_does_not_run():
    nikl = code_identity(SOURCES["nikl_dialogue"])
    assert {"datafactory.korean", "datafactory.sources.inputs", "datafactory.jsonl",
            "datafactory.sources.base"} <= set(nikl.modules)
    assert "datafactory.templates" in code_identity(STEPS["template"]).modules
    assert "datafactory.steps.sample" in code_identity(STEPS["mix"]).modules  # mix takes rows by sample's hash
    assert "datafactory.korean" in code_identity(STEPS["normalize"]).modules
    for cls in [*STEPS.values(), *SOURCES.values()]:
        mods = code_identity(cls).modules
        assert not {"datafactory.cli", "datafactory.label_server", "datafactory.card", "datafactory.engine"} & set(mods)
        assert not {m for m in mods if m.startswith("datafactory.steps.") and m.split(".")[-1] in STEPS
                    and STEPS[m.split(".")[-1]] is not cls and not issubclass(cls, STEPS[m.split(".")[-1]])} - {
            "datafactory.steps.sample", "datafactory.steps.mix"}  # one step's edit does not move every other's id
    assert set(nikl.libraries) >= {"polars", "msgspec", "unicodedata"}
    assert "numpy" in code_identity(STEPS["near_dedup"]).libraries


def _build(root: Path, pythonpath: Path) -> dict:
    """`build` of the project at ``root`` in a fresh interpreter importing datafactory from ``pythonpath``."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "DATAFACTORY_WORKERS": "1"}
    code = ("import json, sys; from pathlib import Path; from datafactory.engine import Factory; import datafactory; "
            "r = Factory(Path(sys.argv[1]) / 'data', Path(sys.argv[1]) / 'recipes').build('talk'); "
            "print(json.dumps({'version': r.version, 'built': r.built, 'file': datafactory.__file__}))")
    done = subprocess.run([sys.executable, "-c", code, str(root)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(pythonpath))
    out["manifest"] = json.loads((root / "data" / "talk" / out["version"] / "manifest.json").read_text("utf-8"))
    rows = []
    for f in out["manifest"]["files"].values():
        import polars as pl

        rows += pl.read_parquet(root / "data" / "talk" / out["version"] / f).to_dicts()
    out["rows"] = rows
    return out


def _copy(tmp: Path, name: str, edit: dict[str, tuple[str, str]]) -> Path:
    """A copy of the package with ``{relative file: (old, new)}`` replaced once each."""
    dest = tmp / name
    shutil.copytree(REPO / "datafactory", dest / "datafactory", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, (old, new) in edit.items():
        path = dest / "datafactory" / rel
        text = path.read_text("utf-8")
        assert text.count(old) >= 1, (rel, old)
        path.write_text(text.replace(old, new, 1), "utf-8")
    return dest


@pytest.mark.slow
def test_editing_a_helper_changes_the_id_and_the_rows_and_a_cli_comment_does_not(project, tmp_path):
    shutil.copytree(SAMPLES / "nikl_dialogue" / "NIKL_DIALOGUE_2024_v1.0", project.root / "inputs" / "nikl")
    project.recipe("talk", {
        "sources": {"daily": {"kind": "nikl_dialogue", "path": "inputs/nikl"}},
        "steps": [{"normalize": {"columns": ["instruction", "output"]}},
                  {"mix": {"total": 1000, "weights": {"daily": 1}, "allow_short": True}},
                  {"template": {}},
                  {"rename": {"columns": {"output": "completion"}}}],
        "output": {"format": "sft"},
        "splits": {"train": 1.0},
    })
    base = _build(project.root, REPO)
    assert base["built"] and any("○○" in r["prompt"] + r["completion"] for r in base["rows"])

    # a comment in the CLI: no build runs it, the same id, nothing built
    cli = _build(project.root, _copy(tmp_path, "cli", {"cli.py": ("\n", "\n# a comment nobody runs\n")}))
    assert cli["version"] == base["version"] and not cli["built"]

    # korean.py's pseudonym placeholder, a helper the NIKL source calls: a new id, the new text, the source read again
    edited = _copy(tmp_path, "korean", {"korean.py": ('"name": "○○",', '"name": "△△",')})
    ko = _build(project.root, edited)
    assert ko["built"] and ko["version"] != base["version"]
    assert any("△△" in r["prompt"] + r["completion"] for r in ko["rows"])
    assert not any("△△" in r["prompt"] + r["completion"] for r in base["rows"])
    src = ko["manifest"]["sources"]["daily"]
    assert src["code"]["modules"]["datafactory.korean"] != base["manifest"]["sources"]["daily"]["code"]["modules"][
        "datafactory.korean"]
    assert src["cache_key"] != base["manifest"]["sources"]["daily"]["cache_key"]

    # a module only a step imports (mix takes rows by sample.py's hash): that step and the later ones are not
    # taken from the cache; the source is
    step = _build(project.root, _copy(tmp_path, "sample", {"steps/sample.py": ("\n", "\nHELPER_EDITED = 1\n")}))
    assert step["version"] != base["version"] and step["built"]
    cached = {s["key"]: s["cached"] for s in step["manifest"]["steps"]}
    assert not cached["steps[1].mix"] and not cached["steps[2].template"]
    assert sorted(r["id"] for r in step["rows"]) == sorted(r["id"] for r in base["rows"])

    # diff names the module that differs
    from datafactory.diff import diff
    from datafactory.store import Store

    d = diff(Store(project.data), f"talk@{base['version']}", f"talk@{ko['version']}")
    assert {(c["where"], c["what"]) for c in d["code"]} >= {("sources.daily", "datafactory.korean")}
    assert not [c for c in d["code"] if c["what"] != "datafactory.korean"]
    d = diff(Store(project.data), f"talk@{base['version']}", f"talk@{step['version']}")
    assert {(c["where"], c["what"]) for c in d["code"]} == {("steps[1].mix", "datafactory.steps.sample"),
                                                             ("splits", "datafactory.steps.sample")}


def test_imports_are_read_in_every_spelling():
    from datafactory.code_identity import imported

    text = ("import polars as pl, msgspec\n"
            "from datafactory.steps.base import (\n    Params,\n    Step as S,\n)\n"
            "def f():\n    from . import korean  # lazily\n    from ..errors import did_you_mean; x = 1\n"
            "    import datafactory.jsonl\n"
            "s = 'not an import from here'\n")
    assert imported(text, "datafactory.sources") == [
        ("polars", None), ("msgspec", None), ("datafactory.steps.base", ["Params", "Step"]),
        ("datafactory.sources", ["korean"]), ("datafactory.errors", ["did_you_mean"]), ("datafactory.jsonl", None)]
