"""The shipped recipes (and the README's example recipe) build offline on the shipped samples, and
`datafactory source` inspects a download. Only the recipes we ship are built here, not whatever a user keeps in
recipes/."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import datafactory
from datafactory.engine import Factory
from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.slow


SHIPPED = ["hate_prompts_v1", "ppo_v1", "rm_v1", "rm_v2", "rm_v3", "sft_v1", "sft_v2"]


def test_the_shipped_list_is_what_git_tracks():
    tracked = subprocess.run(["git", "ls-files", "recipes/*.yaml"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert sorted(Path(p).stem for p in tracked.stdout.split()) == SHIPPED


def test_readme_lists_the_shipped_recipes():
    readme = (REPO / "README.md").read_text("utf-8")
    assert all(f"| `{name}` |" in readme for name in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_builds_on_samples(name, tmp_path):
    res = Factory(tmp_path / "data", REPO / "recipes").build(name)
    m = res.manifest
    assert m["rows"] > 0 and all(n > 0 for n in m["splits"].values())
    dd = datafactory.load(name, data_dir=tmp_path / "data")
    assert sum(d.num_rows for d in dd.values()) == m["rows"]
    for s in m["sources"].values():
        assert s["rows"] > 0 and not s["quarantined"]


def test_readme_example_recipe_builds_as_written(tmp_path):
    """The recipe shown in the README is copied into a project beside the samples and built unchanged."""
    readme = (REPO / "README.md").read_text("utf-8")
    block = readme.split("## Recipes", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    name = yaml.safe_load(block)["name"]
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / f"{name}.yaml").write_text(block, "utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "samples").symlink_to(SAMPLES)
    res = Factory(tmp_path / "data", tmp_path / "recipes").build(name)
    assert res.manifest["rows"] > 0 and set(res.manifest["splits"]) == {"train", "test"}


def test_sft_v1_mixes_daily_and_evol_in_the_kullm_template(tmp_path):
    res = Factory(tmp_path / "data", REPO / "recipes").build("sft_v1")
    train = datafactory.load("sft_v1", split="train", data_dir=tmp_path / "data")
    assert set(train["source"]) == {"daily", "evol"}
    assert all(p.startswith("아래는 작업을 설명하는 명령어입니다.") and p.endswith("### 응답:\n") for p in train["prompt"])
    assert res.manifest["template"]["name"] == "kullm"
    assert not any("name1" in c or "{" in c for c in train["completion"])


def test_source_command_reports_counts_and_records():
    proc = subprocess.run([sys.executable, "-m", "datafactory", "source", "nikl_dialogue", str(SAMPLES / "nikl_dialogue"),
                           "--json", "--head", "2", "-o", "topics=null"], capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    summary, records = lines[0], lines[1:]
    assert summary["files"] == 31 and summary["skipped"] == {"empty_utterance": 10} and len(records) == 2
    assert summary["warnings"] == ["unknown de-identification token &product& (replaced with ○○): 1"]
    assert records[0]["instruction"] == "○○ 씨는 요즘 뭐 먹고 지내요?"
    bad = subprocess.run([sys.executable, "-m", "datafactory", "source", "nikl_dialog", "x"], capture_output=True, text=True)
    assert bad.returncode == 1 and "did you mean 'nikl_dialogue'?" in bad.stderr


def test_source_command_shows_quarantine(tmp_path):
    (tmp_path / "talksets-train-1_aihub.json").write_text('[{"id": 1, "sentences": [{"id": 1}]}]', "utf-8")
    proc = subprocess.run([sys.executable, "-m", "datafactory", "source", "aihub_ethics", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "quarantined missing_field: 1" in proc.stdout and "talkset 0 sentence 0 has no string 'text'" in proc.stdout


def test_repo_files_point_inside_the_repo():
    """Links and paths in tracked text files resolve inside the repository (no ../shared/... notes)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    files = tracked.stdout.split() if tracked.returncode == 0 else [str(p.relative_to(REPO)) for p in REPO.rglob("*.md")]
    outside = []
    for name in files:
        if not name.endswith((".md", ".py", ".yaml", ".toml")) or name == "tests/test_shipped_recipes.py":
            continue
        text = (REPO / name).read_text("utf-8", errors="replace")
        outside += [f"{name}: {m}" for m in re.findall(r"\.\./shared/\S+", text)]
        for link in re.findall(r"\]\(([^)#:\s]+)\)", text) if name.endswith(".md") else []:
            if not (REPO / name).parent.joinpath(link).resolve().is_relative_to(REPO) or not (REPO / name).parent.joinpath(link).exists():
                outside.append(f"{name}: {link}")
    assert outside == []


def test_sft_v1_with_a_large_evol_file_has_both_sources_in_test_in_proportion(tmp_path):
    """The issue's own check: a 3,000-row Evol-Instruct file gave `train 545, test 6` and no Evol-Instruct row
    in test, because mix and split used the same hash."""
    evol = tmp_path / "evol_instruct.json"
    evol.write_text(json.dumps([{"input": f"{i}번째 질문: 서울의 명소를 하나 추천해 주세요.", "output": f"{i}번째 답변: 경복궁을 추천합니다."}
                                for i in range(3000)], ensure_ascii=False), "utf-8")
    res = Factory(tmp_path / "data", REPO / "recipes", overrides={"evol": str(evol)}).build("sft_v1")
    dd = datafactory.load("sft_v1", data_dir=tmp_path / "data")
    count = lambda split: {s: dd[split]["source"].count(s) for s in ("daily", "evol")}  # noqa: E731
    train, test = count("train"), count("test")
    for s in ("daily", "evol"):
        assert test[s] > 0 and abs(test[s] / (train[s] + test[s]) - 0.1) < 0.03, (s, train, test)
    assert res.manifest["splits"]["test"] >= 50
