"""The shipped recipes (and the README's example recipe) build offline on the shipped samples, and
`datafactory source` inspects a download. Only the recipes we ship are built here, not whatever a user keeps in
recipes/."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

import datafactory
from datafactory.engine import Factory
from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.slow


SHIPPED = ["chat_ppo_v1", "chat_rm_v1", "chat_sft_v1", "hate_prompts_v1", "ppo_v1", "rm_v1", "rm_v2", "rm_v3", "sft_v1",
           "sft_v2"]


def test_the_shipped_list_is_what_git_tracks():
    tracked = subprocess.run(["git", "ls-files", "recipes/*.yaml"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert sorted(Path(p).stem for p in tracked.stdout.split()) == SHIPPED


def test_readme_lists_the_shipped_recipes():
    readme = (REPO / "README.md").read_text("utf-8")
    assert all(f"| `{name}` |" in readme for name in SHIPPED)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """Every shipped recipe built from the samples into one fresh store (upstream versions shared, as a user's are):
    {name: (manifest, {split: polars frame})}."""
    import polars as pl

    data = tmp_path_factory.mktemp("shipped") / "data"
    factory = Factory(data, REPO / "recipes")
    out = {"_data": data}
    for name in SHIPPED:
        res = factory.build(name)
        m = datafactory.manifest(f"{name}@{res.version}", data_dir=data)
        out[name] = (m, {s: pl.read_parquet(data / name / res.version / f) for s, f in m["files"].items()})
    return out


PREFERENCE = ["rm_v1", "rm_v2", "rm_v3", "chat_rm_v1"]


def test_both_answers_of_every_pair_were_asked_the_conversation_its_prompt_holds(shipped):
    """Every preference recipe: a pair's answers (from the response store, by the row's `llm_calls`) answer one
    conversation, and the row's prompt is exactly it: a text prompt is that conversation rendered by the KULLM chat
    template, a conversational prompt is its messages. Daily-conversation prompts hold their earlier turns."""
    from datafactory.llm.store import ResponseStore
    from datafactory.store import Store
    from datafactory.templates import load_template
    from datafactory.templates.chat import chat_template, render

    kullm = chat_template(load_template("kullm"))
    responses = ResponseStore(Store(shipped["_data"]).responses)
    with_turns = 0
    for name in PREFERENCE:
        rows = _rows(shipped, name)
        for row in rows.iter_rows(named=True):
            asked = [r for k in row["llm_calls"] if (r := responses.get_full(k)["request"])["meta"]["task"]
                     == "respond"]
            roles = {r["role"] for r in asked}
            assert len(asked) >= 2 - (name == "rm_v1") and roles, (name, row["id"])
            assert len({r["meta"]["conversation"] for r in asked}) == 1, (name, row["id"])  # one conversation
            plain = next(r["messages"] for r in asked if r["role"] == "sft")
            if isinstance(row["prompt"], str):
                assert row["prompt"] == render(kullm, plain), (name, row["id"])
            else:
                assert row["prompt"] == plain, (name, row["id"])
            teacher = next((r["messages"] for r in asked if r["role"] == "teacher"), None)
            if teacher is not None:  # the teacher's turns are the same, its system prompt and wording around them aside
                assert [m for m in teacher if m["role"] != "system"][:-1] == plain[:-1], (name, row["id"])
            with_turns += len(plain) > 1
    assert with_turns >= 8  # the daily and translated dialogues carry their turns


def _rows(shipped, name):
    import polars as pl

    return pl.concat(list(shipped[name][1].values()), how="diagonal_relaxed")


def _step(manifest, name, sources=None):
    return next(s for s in manifest["steps"] if s["step"] == name and (sources is None or s["sources"] == sources))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_builds_on_samples(name, shipped):
    m, splits = shipped[name]
    assert m["rows"] > 0 and all(n > 0 for n in m["splits"].values())
    assert sum(f.height for f in splits.values()) == m["rows"]
    for s in m["sources"].values():
        assert s["rows"] > 0 and not s["quarantined"]


def test_mixes_keep_the_recipes_ratios(shipped):
    """Each mix keeps its weights' share of `total` per source (largest remainder), and every kept prompt reaches the
    output unless a counted pairing rule dropped it."""
    from datafactory.steps.mix import allocate

    wants = {"rm_v1": {"sft": 6, "hate": 3, "rlhf": 6}, "rm_v2": {"sft": 6, "hate": 6, "rlhf": 6, "evol": 6},
             "rm_v3": {"sft": 6, "rlhf": 6, "evol": 6}, "ppo_v1": {"sft": 8, "hate": 4, "rlhf": 4, "seeds": 4}}
    for name, want in wants.items():
        m, _ = shipped[name]
        mix = _step(m, "mix")
        assert allocate(mix["params"]["total"], mix["params"]["weights"]) == want, name
        assert mix["info"]["taken"] == want and mix["rows_out"] == sum(want.values()), name
    ppo = _rows(shipped, "ppo_v1")
    assert ppo["source"].value_counts().sort("source").rows() == sorted(wants["ppo_v1"].items())
    assert all(p.startswith("아래는 작업을 설명하는 명령어") and p.endswith("### 응답:\n") for p in ppo["prompt"])


def test_pairs_follow_their_rules(shipped):
    """Judged pairs: the higher G-Eval total is chosen, ties and pairs both under `min_total` are dropped (and
    counted); role pairs: the teacher's answer over the SFT model's. rm_v1 pairs two answers of the SFT model."""
    for name in ("rm_v1", "rm_v2", "rm_v3", "chat_rm_v1"):
        m, _ = shipped[name]
        rows = _rows(shipped, name)
        judged = rows.filter(rows["label_source"] == "judge")
        assert judged.height > 0 and set(rows["label_source"]) <= {"judge", "role"}
        for r in judged.iter_rows(named=True):
            assert r["chosen_score"] > r["rejected_score"] and r["chosen_score"] >= 20, (name, r["id"])
        assert all(r["chosen"] and r["rejected"] and r["chosen"] != r["rejected"] for r in rows.iter_rows(named=True))
        if name == "chat_rm_v1":  # the same pairs as rm_v3, as conversations
            assert sorted(rows["id"]) == sorted(_rows(shipped, "rm_v3")["id"])
        pairs = [s for s in m["steps"] if s["step"] == "pair"]
        by_score = next(s for s in pairs if s["params"]["by"] == "score")
        assert by_score["params"]["min_total"] == 20
        # every prompt the mix kept ends as one pair, or is counted as a dropped pair (tie, both low: in pairs)
        dropped = sum(n for s in pairs for r, n in s["dropped"].items() if r in ("tie", "both_low"))
        assert rows.height + dropped == _step(m, "mix")["rows_out"], name
        if name != "rm_v1":
            role = rows.filter(rows["label_source"] == "role")
            assert role.height and set(role["chosen_role"]) == {"teacher"} and set(role["rejected_role"]) == {"sft"}
            assert set(role["source"]) == {"rlhf", "evol"}
    # the samples hold each rule's case, so each is exercised: both low in rm_v1, a tie and both low in rm_v2/rm_v3
    assert _step(shipped["rm_v1"][0], "pair")["dropped"].get("both_low", 0) > 0
    for name in ("rm_v2", "rm_v3", "chat_rm_v1"):
        d = next(s for s in shipped[name][0]["steps"] if s["step"] == "pair")["dropped"]
        assert d.get("tie", 0) > 0 and d.get("both_low", 0) > 0, (name, d)


def test_hate_speech_pairs_are_in_rm_v2_and_not_in_rm_v3(shipped):
    v2, v3 = _rows(shipped, "rm_v2"), _rows(shipped, "rm_v3")
    hate = v2.filter(v2["source"] == "hate")
    judged = _step(shipped["rm_v2"][0], "pair", ["sft", "hate"])  # the mix's 6 + 6 prompts: a pair each, or dropped
    lost = sum(n for r, n in judged["dropped"].items() if r in ("tie", "both_low"))
    assert hate.height + v2.filter(v2["source"] == "sft").height + lost == 12
    assert hate.height > 0 and (hate["label_source"] == "judge").all()
    assert "hate" not in set(v3["source"]) and "hate" not in shipped["rm_v3"][0]["sources"]
    # rm_v3's daily pairs came from sft_v2's daily-conversation rows only
    assert set(v3["source"]) == {"sft", "rlhf", "evol"}
    hate_prompts = set(hate["instruction"])
    assert not hate_prompts & set(v3["instruction"])


def test_hate_prompts_v1_keeps_immoral_first_utterances(shipped):
    rows = _rows(shipped, "hate_prompts_v1")
    assert rows.height == shipped["hate_prompts_v1"][0]["rows"] > 0
    assert (rows["intensity"] >= 1.0).all() and all(len(t) > 0 for t in rows["types"])
    assert rows["instruction"].n_unique() == rows.height  # deduplicated
    assert all(5 <= len(i) <= 300 for i in rows["instruction"])
    assert all(p.endswith("### 응답:\n") and i in p for p, i in zip(rows["prompt"], rows["instruction"]))


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


def test_sft_v1_mixes_daily_and_evol_in_the_kullm_template(shipped):
    m, splits = shipped["sft_v1"]
    train = splits["train"]
    assert set(train["source"]) == {"daily", "evol"}
    assert all(p.startswith("아래는 작업을 설명하는") and p.endswith("### 응답:\n") for p in train["prompt"])
    assert m["template"]["name"] == "kullm"
    assert not any("name1" in c or "{" in c for c in train["completion"])
    # a daily line carries the (up to four) turns before it in the input slot; its first line has none
    for row in train.filter(pl.col("source") == "daily").iter_rows(named=True):
        turns = row["history"]
        assert len(turns) <= 4 and ("### 입력:" in row["prompt"]) == bool(turns)
        assert all(f": {t['content']}\n" in row["prompt"] for t in turns)
    assert train.filter(pl.col("source") == "daily")["history"].list.len().max() == 4
    assert (train.filter(pl.col("source") == "evol")["prompt"].str.starts_with("아래는 작업을 설명하는 명령어입니다.")).all()


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


@pytest.mark.parametrize("name", ["chat_sft_v1", "chat_rm_v1", "chat_ppo_v1"])
def test_a_pushed_conversational_set_loads_with_nested_message_features_and_no_warning(shipped, name, tmp_path):
    """`push --dry-run` writes what the Hub would get; `datasets.load_dataset` on it gives the conversational columns
    as lists of {role, content} (declared in the card's dataset_info), every row, and says nothing."""
    import io
    import logging

    import datasets
    from datasets.utils import logging as hf_logging

    from datafactory.conversations import CONVERSATIONAL
    from datafactory.hub import push
    from datafactory.store import Store

    m, splits = shipped[name]
    push(Store(shipped["_data"]), f"{name}@{m['version']}", "org/x", allow_restricted=True, dry_run=tmp_path / "up")
    said = io.StringIO()
    handler = logging.StreamHandler(said)
    hf_logging.get_logger().addHandler(handler)
    try:
        loaded = datasets.load_dataset(str(tmp_path / "up"), cache_dir=str(tmp_path / "cache"))
    finally:
        hf_logging.get_logger().removeHandler(handler)
    assert "Ignoring" not in said.getvalue() and "warn" not in said.getvalue().lower(), said.getvalue()
    message = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    for split, frame in splits.items():
        features = loaded[split].features
        assert all(features[c] == message for c in CONVERSATIONAL[m["format"]]), features
        assert loaded[split].num_rows == frame.height
        row = loaded[split][0]
        assert row["prompt"][-1]["role"] == "user" and row["prompt"][-1]["content"]


def test_terms_and_warnings_follow_the_rows_a_version_holds(shipped):
    """rm_v3 reads sft_v2 but keeps its daily-conversation rows only: no hate-speech warning, no AIHub restriction
    (rm_v2, which keeps sft_v2's hate rows, has both); a push is refused naming NIKL alone; every card built from
    the shipped samples says so."""
    from datafactory.hub import restrictions

    v3, v2 = shipped["rm_v3"][0], shipped["rm_v2"][0]
    assert not v3["terms"]["content_warnings"] and v2["terms"]["content_warnings"]
    assert [r["source"].split(": ")[-1] for r in restrictions(v3)] == ["daily"]
    assert {r["source"].split(": ")[-1] for r in restrictions(v2)} == {"daily", "hate"}
    data = shipped["_data"]
    for name in ("rm_v3", "rm_v2", "chat_rm_v1"):
        card = (data / name / shipped[name][0]["version"] / "README.md").read_text("utf-8")
        assert ("**Content warning.**" in card) == (name == "rm_v2"), name
        assert "> **Built from samples.**" in card and "sample answers the team wrote by hand" in card
    assert "hate" in shipped["sft_v2"][0]["terms"]["warned"][0]["source"]


def test_cards_state_the_facts_of_the_rows_they_describe(shipped):
    """A null is JSON's null in the examples (it was the string "null"); the template's variants are counted in the
    published rows (18 rows counted in a 16-row rm_v3); lengths are given for text, not for label columns."""
    data = shipped["_data"]
    for name in ("rm_v3", "sft_v2", "ppo_v1"):
        m, _ = shipped[name]
        card = (data / name / m["version"] / "README.md").read_text("utf-8")
        used = m["template"]["used"]
        assert sum(used.values()) == m["rows"], (name, used)
        examples = card.split("## Examples")[1]
        assert '"null"' not in examples
        stats = card.split("## Length statistics")[1].split("##")[0]
        assert "| chosen_role |" not in stats and "| label_source |" not in stats and "| category |" not in stats
        assert "| prompt |" in stats
    rm = (data / "rm_v3" / shipped["rm_v3"][0]["version"] / "README.md").read_text("utf-8")
    assert '"chosen_score": null' in rm.split("## Examples")[1]  # a role pair has no scores
    assert "(4 rows)" in rm or "rows with an input" in rm


@pytest.mark.parametrize("name", ["rm_v1", "rm_v2", "rm_v3", "chat_rm_v1"])
def test_rm_recipes_mask_the_models_answers_before_the_judge_and_the_pairs_table(name):
    """The pairs table (`tables/pairs.parquet`) is written by the pair step from the answers as they were then: a
    `pii` step on `response` comes after every `respond` and before any `judge` or `pair`."""
    steps = [next(iter(s.items())) for s in yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text("utf-8"))["steps"]]
    kinds = [k for k, _ in steps]
    masks = [i for i, (k, p) in enumerate(steps) if k == "pii" and "response" in p["columns"]]
    assert masks, name
    last_respond = max(i for i, k in enumerate(kinds) if k == "respond")
    first_use = min(i for i, k in enumerate(kinds) if k in ("judge", "pair"))
    assert any(last_respond < i < first_use for i in masks), kinds
