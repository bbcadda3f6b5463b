"""Decontamination against KoBEST and benchmark files: planted items leave and are named, clean rows stay, and
trainers/eval.py warns when a model's data was not checked against what it is scored on."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import polars as pl
import pytest

from datafactory.errors import DataFactoryError
from tests.conftest import REPO

KOBEST = str(REPO / "data" / "samples" / "kobest" / "hub")
ROWS = [
    {"qid": "clean1", "question": "주말에 등산 가려는데 준비물 알려 줄래요?", "answer": "물, 간식, 바람막이를 챙기세요."},
    {"qid": "copa", "question": "이거 풀어 볼래? 물을오래끓였다. 물의 양이   늘어났다. 물의 양이 줄어들었다. 답은?",
     "answer": "두 번째요."},  # a COPA item with its spacing changed, inside a longer turn
    {"qid": "wic", "question": "오래 걸었더니 다리가 퉁퉁 부었다.", "answer": "좀 쉬세요."},  # a WiC context
    {"qid": "clean2", "question": "양파를 썰 때 눈이 맵지 않은 방법이 있나요?", "answer": "양파를 냉장고에 넣어 두세요."},
]


def recipe(project, name, **step):
    project.jsonl("chats.jsonl", ROWS)
    project.recipe(name, {
        "sources": {"c": {"kind": "files", "path": "inputs/chats.jsonl",
                          "options": {"id": "qid", "fields": {"instruction": "question", "output": "answer"}}}},
        "steps": [{"decontaminate": {"columns": ["instruction", "output"], **step}},
                  {"rename": {"columns": {"instruction": "prompt", "output": "completion"}}}],
        "output": {"format": "sft"}, "splits": {"train": 1.0}, "seed": 1})


def built(project, name):
    res = project.factory().build(name)
    folder = project.data / name / res.version
    return folder, json.loads((folder / "manifest.json").read_text("utf-8"))


def test_planted_kobest_items_are_dropped_and_named(project):
    recipe(project, "d", against=[{"kobest": KOBEST}])
    folder, manifest = built(project, "d")
    assert sorted(pl.read_parquet(folder / "train.parquet")["id"].to_list()) == ["c/clean1", "c/clean2"]
    step = next(s for s in manifest["steps"] if s["step"] == "decontaminate")
    assert step["dropped"] == {"contaminated_kobest_copa": 1, "contaminated_kobest_wic": 1}
    info = step["info"]["decontaminate"]
    assert info["found"] == {"kobest_copa": 1, "kobest_wic": 1} and info["unit"] == "chars" and info["n"] == 10
    assert set(info["against"]) == {"kobest_boolq", "kobest_copa", "kobest_hellaswag", "kobest_sentineg", "kobest_wic"}
    table = pl.read_parquet(folder / "tables" / "contamination.parquet").sort("id")
    assert table["id"].to_list() == ["c/copa", "c/wic"]
    assert table["item"].to_list()[0].startswith("kobest/copa/train.jsonl#") and table["overlap"].min() >= 0.5
    assert "물을 오래 끓였다." in table["item_text"][0]
    card = (folder / "README.md").read_text("utf-8")
    assert "Decontamination" in card and "kobest_copa: 1" in card


def test_morphemes_mark_and_a_benchmark_file(project, tmp_path):
    bench = tmp_path / "mine.jsonl"
    bench.write_text(json.dumps({"q": "양파를 썰 때 눈이 맵지 않은 방법이 있나요?", "a": "냉장고"}, ensure_ascii=False) + "\n",
                     "utf-8")
    recipe(project, "m", against=[{"kobest": KOBEST}, {"file": str(bench), "fields": ["q"], "name": "mine"}],
           unit="morphemes", action="mark")
    folder, manifest = built(project, "m")
    rows = {r["id"]: r["contaminated"] for r in pl.read_parquet(folder / "train.parquet").to_dicts()}
    assert rows == {"c/clean1": None, "c/copa": "kobest_copa", "c/wic": "kobest_wic", "c/clean2": "mine"}
    assert manifest["rows"] == 4


def test_a_built_dataset_by_name_is_an_evaluation_set_and_its_version_is_part_of_the_data(project):
    """`against: [{dataset: NAME}]` takes a dataset built here (its latest version, or NAME@VERSION); its split and
    fields are chosen; a row overlapping one of its rows leaves and is named with the dataset's version and row; a
    new version of the evaluation set makes a new version of the data; an unknown name or split is a clear error."""
    project.jsonl("evalset.jsonl", [{"qid": "e1", "q": "양파를 썰 때 눈이 맵지 않은 방법이 있나요?"},
                                    {"qid": "e2", "q": "전혀 다른 질문 하나를 여기에 적어 둡니다."}])
    project.recipe("my_eval", {
        "sources": {"e": {"kind": "files", "path": "inputs/evalset.jsonl", "options": {"id": "qid",
                                                                                      "fields": {"prompt": "q"}}}},
        "steps": [{"rename": {"columns": {"prompt": "prompt"}}}],
        "output": {"format": "prompt"}, "splits": {"test": 1.0}, "seed": 1})
    first = project.factory().build("my_eval")
    recipe(project, "x", against=[{"dataset": "my_eval", "splits": ["test"], "fields": ["prompt"]}])
    folder, manifest = built(project, "x")
    assert sorted(pl.read_parquet(folder / "train.parquet")["id"].to_list()) == ["c/clean1", "c/copa", "c/wic"]
    table = pl.read_parquet(folder / "tables" / "contamination.parquet")
    assert table["id"].to_list() == ["c/clean2"]
    assert table["item"][0] == f"my_eval@{first.version}/test/e/e1" and table["benchmark"][0] == "my_eval"
    step = next(s for s in manifest["steps"] if s["step"] == "decontaminate")
    assert step["dropped"] == {"contaminated_my_eval": 1}
    assert project.factory().build("x").version == folder.name  # nothing changed: the same version
    project.jsonl("evalset.jsonl", [{"qid": "e3", "q": "완전히 새로운 평가 문항 하나를 적습니다."}])
    assert project.factory().build("my_eval").version != first.version
    again = project.factory().build("x")
    assert again.version != folder.name  # the evaluation set changed: so did the data checked against it
    assert sorted(pl.read_parquet(project.data / "x" / again.version / "train.parquet")["id"].to_list()) == [
        "c/clean1", "c/clean2", "c/copa", "c/wic"]
    pinned = f"my_eval@{first.version}"
    recipe(project, "p", against=[{"dataset": pinned, "fields": ["prompt"]}])
    assert built(project, "p")[1]["rows"] == 3
    recipe(project, "n", against=[{"dataset": "my_evl"}])
    with pytest.raises(DataFactoryError, match="against dataset 'my_evl': no built dataset named 'my_evl'.*my_eval"):
        project.factory().build("n")
    recipe(project, "s", against=[{"dataset": "my_eval", "splits": ["valid"]}])
    with pytest.raises(DataFactoryError, match="has no split 'valid' \\(splits: test\\)"):
        project.factory().build("s")
    recipe(project, "f", against=[{"dataset": "my_eval", "fields": ["question"]}])
    with pytest.raises(DataFactoryError, match="has no field 'question'"):
        project.factory().build("f")


def test_bad_settings_and_inputs_are_clear(project, tmp_path):
    recipe(project, "a", against=[{"kobest": str(tmp_path / "nowhere")}])
    with pytest.raises(DataFactoryError, match="no KoBEST at .*nowhere"):
        project.factory().build("a")
    recipe(project, "b", against=[{"kobest": KOBEST, "file": "x.jsonl"}])
    with pytest.raises(DataFactoryError, match="give one of kobest: PATH, file: PATH or dataset: NAME"):
        project.factory().build("b")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", "utf-8")
    recipe(project, "c", against=[{"file": str(bad)}])
    with pytest.raises(DataFactoryError, match="bad.jsonl line 1: not valid JSON"):
        project.factory().build("c")
    bad.write_text('{"question": "하늘은 왜 파란가요?"}\n\n["a list"]\n', "utf-8")
    with pytest.raises(DataFactoryError, match="bad.jsonl line 3 is not a JSON object"):
        project.factory().build("c")
    project.recipe("e", {"sources": {"c": {"kind": "files", "path": "inputs/chats.jsonl", "options": {"id": "qid"}}},
                         "steps": [{"decontaminate": {"columns": ["questoin"], "against": [{"kobest": KOBEST}]}}],
                         "output": {"format": "text"}, "splits": {"train": 1.0}})
    with pytest.raises(DataFactoryError, match="no column 'questoin'.*question"):
        project.factory().build("e")


def test_eval_warns_when_the_training_data_was_not_decontaminated(project):
    recipe(project, "checked", against=[{"kobest": KOBEST}])
    project.recipe("unchecked", {
        "sources": {"c": {"kind": "files", "path": "inputs/chats.jsonl",
                          "options": {"id": "qid", "fields": {"instruction": "question", "output": "answer"}}}},
        "steps": [{"rename": {"columns": {"instruction": "prompt", "output": "completion"}}}],
        "output": {"format": "sft"}, "splits": {"train": 1.0}, "seed": 1})
    spec = importlib.util.spec_from_file_location("trainer_eval", REPO / "trainers" / "eval.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for name in ("checked", "unchecked"):
        version = project.factory().build(name).version
        folder = project.root / "models" / name
        folder.mkdir(parents=True)
        (folder / "datafactory.json").write_text(json.dumps({"stage": "sft", "dataset": {"ref": f"{name}@{version}"}}))
    warn = module.undecontaminated(str(project.root / "models" / "unchecked"), ["kobest_copa"], project.data)
    assert len(warn) == 1 and "not decontaminated against kobest_copa" in warn[0] and "unchecked@" in warn[0]
    assert module.undecontaminated(str(project.root / "models" / "checked"), ["kobest_copa"], project.data) == []
    # a PPO model whose SFT model was checked: the chain is followed
    ppo = project.root / "models" / "ppo"
    ppo.mkdir()
    (ppo / "datafactory.json").write_text(json.dumps({"stage": "ppo", "dataset": {"ref": "checked"},
                                                      "sft_model": str(project.root / "models" / "unchecked")}))
    assert len(module.undecontaminated(str(ppo), ["kobest_copa"], project.data)) == 1
    assert Path(module.__file__).name == "eval.py"
