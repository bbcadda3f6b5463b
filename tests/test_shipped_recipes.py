"""The shipped recipes build offline on the shipped samples, and `datafactory source` inspects a download."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import datafactory
from datafactory.engine import Factory
from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "recipes").glob("*.yaml")))
def test_shipped_recipe_builds_on_samples(name, tmp_path):
    res = Factory(tmp_path / "data", REPO / "recipes").build(name)
    m = res.manifest
    assert m["rows"] > 0 and all(n > 0 for n in m["splits"].values())
    dd = datafactory.load(name, data_dir=tmp_path / "data")
    assert sum(d.num_rows for d in dd.values()) == m["rows"]
    for s in m["sources"].values():
        assert s["rows"] > 0 and not s["quarantined"]


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
    assert summary["files"] == 28 and summary["skipped"] == {"empty_utterance": 9} and len(records) == 2
    assert records[0]["instruction"] == "○○ 씨는 요즘 뭐 먹고 지내요?"
    bad = subprocess.run([sys.executable, "-m", "datafactory", "source", "nikl_dialog", "x"], capture_output=True, text=True)
    assert bad.returncode == 1 and "did you mean 'nikl_dialogue'?" in bad.stderr


def test_source_command_shows_quarantine(tmp_path):
    (tmp_path / "talksets-train-1_aihub.json").write_text('[{"id": 1, "sentences": [{"id": 1}]}]', "utf-8")
    proc = subprocess.run([sys.executable, "-m", "datafactory", "source", "aihub_ethics", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "quarantined missing_field: 1" in proc.stdout and "talkset 0 sentence 0 has no string 'text'" in proc.stdout
