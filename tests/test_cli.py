"""The command line as a user runs it: real subprocesses, one-line errors, results on stdout."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import qa_rows, sft_recipe

pytestmark = pytest.mark.slow


def cli(project, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "datafactory", "--data", str(project.data), "--recipes",
                           str(project.recipes), *args], capture_output=True, text=True, cwd=project.root)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def cli_project(project):
    project.jsonl("qa.jsonl", qa_rows(40))
    project.recipe("sft", sft_recipe())
    return project


def test_build_prints_ref_last_then_noop(cli_project):
    first = cli(cli_project, "build", "sft")
    ref = first.stdout.strip().splitlines()[-1]
    assert ref.startswith("sft@") and "steps[1].filter" in first.stderr
    second = cli(cli_project, "--quiet", "build", "sft")
    assert second.stdout.strip() == ref and second.stderr == ""


def test_plan_list_show_card_diff_gc(cli_project, tmp_path):
    plan = cli(cli_project, "plan", "sft").stdout
    assert "[to build]" in plan and "source qa (files): read" in plan and "steps[0].normalize: run" in plan
    ref = cli(cli_project, "-q", "build", "sft").stdout.strip()
    assert "[built]" in cli(cli_project, "plan", "sft").stdout
    assert ref.split("@")[1] in cli(cli_project, "list").stdout
    shown = cli(cli_project, "show", ref, "--rows", "1").stdout
    assert "steps[1].filter" in shown and '"id": "qa/q' in shown
    assert json.loads(cli(cli_project, "show", "sft", "--json").stdout)["version"] == ref.split("@")[1]
    assert cli(cli_project, "card", "sft").stdout.startswith("---\nlanguage:")
    cli_project.jsonl("qa.jsonl", qa_rows(45))
    ref2 = cli(cli_project, "-q", "build", "sft").stdout.strip()
    d = json.loads(cli(cli_project, "diff", ref, ref2, "--json").stdout)
    assert sum(s["added"] for s in d["splits"].values()) == 5
    assert "added" in cli(cli_project, "diff", ref, ref2).stdout
    up = cli(cli_project, "push", "sft", "--repo", "org/ko", "--dry-run", str(tmp_path / "up")).stdout.split()
    assert sorted(p.rsplit("/", 1)[1] for p in up) == ["README.md", "manifest.json", "test.parquet", "train.parquet"]
    assert str(cli_project.data / "sft" / ref.split("@")[1]) in cli(cli_project, "gc").stdout


def test_user_errors_are_one_line_without_traceback(cli_project):
    cli_project.recipe("bad", sft_recipe(steps=[{"fliter": {}}]))
    for args, expected in ((["build", "bad"], "did you mean 'filter'?"),
                           (["build", "sfx"], "no recipe named 'sfx'"),
                           (["show", "nothing"], "no built dataset named 'nothing'"),
                           (["build", "sft", "--source", "qa"], "write it as NAME=PATH"),
                           (["build", "sft", "--source", "qa=/does/not/exist.jsonl"], "no such file or folder")):
        proc = cli(cli_project, *args, check=False)
        assert proc.returncode == 1, args
        assert proc.stderr.startswith("error: ") and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_usage_mistakes_get_usage_not_traceback(cli_project):
    proc = cli(cli_project, "build", check=False)
    assert proc.returncode == 2 and "Missing argument 'name'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli(cli_project, "biuld", "sft", check=False)
    assert proc.returncode == 2 and "No such command 'biuld'" in proc.stderr


def test_source_override_from_the_command_line(cli_project, tmp_path):
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa_rows(12)), "utf-8")
    ref = cli(cli_project, "-q", "build", "sft", "--source", f"qa={mine}").stdout.strip()
    assert json.loads(cli(cli_project, "show", ref, "--json").stdout)["rows"] == 12
