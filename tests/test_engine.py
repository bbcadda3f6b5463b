"""End to end through the engine: versions, the step cache, the recipe graph, locking, bad input, load, card, gc."""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import datasets
import polars as pl
import pytest
import yaml

import datafactory
from datafactory.diff import diff
from datafactory.errors import DataFactoryError, RecipeError, SourceError
from tests.conftest import columns_seen, qa_rows, sft_recipe


def test_build_twice_is_a_noop_with_the_same_version(built):
    project, first = built
    assert first.built and first.manifest["rows"] == 50
    again = project.factory().build("sft")
    assert not again.built and again.version == first.version
    assert project.factory().plan("sft").built


def fp_file_digest(project) -> str:
    from datafactory.hashing import file_digest

    return file_digest(project.root / "inputs" / "qa.jsonl")


def test_layout_manifest_and_lineage(built):
    project, res = built
    vdir = project.data / "sft" / res.version
    assert sorted(p.name for p in vdir.iterdir()) == ["LICENSE.md", "README.md", "inputs", "lengths.png",
                                                      "manifest.json", "test.parquet", "train.parquet"]
    assert (project.data / "sft" / "latest").read_text().strip() == res.version
    m = json.loads((vdir / "manifest.json").read_text())
    assert sum(m["splits"].values()) == 50 and 30 <= m["splits"]["train"] <= 48
    assert m["template"]["name"] == "kullm" and m["format"] == "sft"
    fp = m["sources"]["qa"]["fingerprint"]
    assert fp["files"] == 1 and len(fp["digest"]) == 32 and m["sources"]["qa"]["rows"] == 50
    listing = (vdir / fp["list"]).read_text().splitlines()  # the per-file list sits beside the manifest
    assert listing[0] == "name\tbytes\tdigest" and listing[1].split("\t")[2] == fp_file_digest(project)
    assert [s["key"] for s in m["steps"]][-1] == "splits"
    train = pl.read_parquet(vdir / "train.parquet")
    assert train.columns[:4] == ["id", "source", "prompt", "completion"]
    assert train["id"].str.starts_with("qa/q").all() and (train["source"] == "qa").all()


def test_changing_one_step_reruns_only_it_and_later(built):
    project, first = built
    body = sft_recipe()
    body["steps"][1] = {"filter": {"length": {"column": "output", "min": 10}}}
    project.recipe("sft", body)
    second = project.factory().build("sft")
    assert second.built and second.version != first.version
    cached = [s.get("cached") for s in second.manifest["steps"]]
    # quick steps are not kept: the build starts again from the cached source (read, not parsed)
    assert cached == [False, False, False, False, False]
    assert second.manifest["sources"]["qa"]["rows"] == 50
    assert second.manifest["steps"][1]["dropped"] == {"too_short": 10}  # "0번 답변입니다." .. "9번 답변입니다."
    kept = [(project.data / ".cache" / "steps" / f"{s['cache_key']}.parquet").exists() for s in second.manifest["steps"]]
    assert kept == [False, False, False, True, False]  # only the recipe's last step (before the split)


def test_a_step_added_at_the_end_starts_from_the_kept_last_step(built):
    project, first = built
    body = sft_recipe()
    body["steps"].append({"select": {"columns": ["prompt", "completion"]}})
    project.recipe("sft", body)
    second = project.factory().build("sft")
    assert [s.get("cached") for s in second.manifest["steps"]] == [True, True, True, True, False, False]
    assert second.manifest["rows"] == first.manifest["rows"]


def test_changing_input_changes_version_and_rereads_source(built):
    project, first = built
    project.jsonl("qa.jsonl", qa_rows(60))
    second = project.factory().build("sft")
    assert second.version != first.version and second.manifest["rows"] == 60
    assert not any(s.get("cached") for s in second.manifest["steps"])


def test_same_content_elsewhere_gives_same_version(built, tmp_path):
    project, first = built
    other = tmp_path / "elsewhere" / "qa.jsonl"  # same name and bytes, another folder
    other.parent.mkdir()
    other.write_bytes((project.root / "inputs" / "qa.jsonl").read_bytes())
    res = project.factory(overrides={"qa": str(other)}).build("sft")
    assert res.version == first.version and not res.built


def test_description_change_changes_version_but_reuses_all_steps(built):
    project, first = built
    project.recipe("sft", sft_recipe(description="new words"))
    res = project.factory().build("sft")
    # every step of the recipe is reused; only the split (quick, never kept) runs again from the last one
    assert res.version != first.version and [s["cached"] for s in res.manifest["steps"]] == [True] * 4 + [False]


def test_recipe_graph_builds_upstream_first_and_tracks_it(built):
    project, first = built
    project.recipe("prompts", {
        "sources": {"sft": {"kind": "dataset", "options": {"name": "sft", "splits": ["train"]}}},
        "steps": [{"select": {"columns": ["prompt"]}}],
        "output": {"format": "prompt"},
    })
    res = project.factory().build("prompts")
    assert res.manifest["upstream"] == {"sft": {"dataset": "sft", "version": first.version}}
    ds = datafactory.load("prompts", split="train", data_dir=project.data)
    assert ds[0]["id"].startswith("sft/qa/q") and set(ds.column_names) == {"id", "source", "prompt"}
    # an upstream change is picked up: upstream rebuilt first, downstream gets a new version
    project.jsonl("qa.jsonl", qa_rows(70))
    res2 = project.factory().build("prompts")
    assert res2.upstream and res2.upstream[0].built
    assert res2.version != res.version
    assert res2.manifest["upstream"]["sft"]["version"] == res2.upstream[0].version
    # a pinned version that is not there is named by the recipe key that pins it
    project.recipe("pinned", {"sources": {"sft": {"kind": "dataset", "options": {"name": "sft", "version": "zz"}}},
                              "output": {"format": "prompt"}})
    with pytest.raises(RecipeError, match=r"pinned\.yaml: sources\.sft\.options: sft@zz: 'zz' matches no version of sft"):
        project.factory().plan("pinned")
    project.recipe("pinned", {"sources": {"sft": {"kind": "dataset", "options": {"name": "../sft"}}},
                              "output": {"format": "prompt"}})
    with pytest.raises(RecipeError, match=r"pinned\.yaml: sources\.sft\.options\.name: .*'\.\./sft' is not a dataset's name"):
        project.factory().plan("pinned")


def test_cycle_is_detected(project):
    for a, b in (("a", "b"), ("b", "a")):
        project.recipe(a, {"sources": {"up": {"kind": "dataset", "options": {"name": b}}},
                           "output": {"format": "prompt"}})
    with pytest.raises(RecipeError, match="cycle: a -> b -> a"):
        project.factory().plan("a")


def _build_in_process(args):
    data, recipes = args
    from datafactory.engine import Factory
    return Factory(Path(data), Path(recipes)).build("sft").version


def test_concurrent_builds_of_one_recipe(project):
    project.jsonl("qa.jsonl", qa_rows(300))
    project.recipe("sft", sft_recipe())
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        versions = pool.map(_build_in_process, [(str(project.data), str(project.recipes))] * 3)
    assert len(set(versions)) == 1
    dirs = [p.name for p in (project.data / "sft").iterdir() if p.is_dir()]
    assert dirs == versions[:1]  # one version, no staging left-overs
    assert datafactory.load("sft", data_dir=project.data)["train"].num_rows > 0


def test_corrupt_input_gives_clear_error_and_leaves_store_untouched(built):
    project, first = built
    good = (project.root / "inputs" / "qa.jsonl").read_text()
    (project.root / "inputs" / "qa.jsonl").write_text(good + '{"qid": "q99", "question": "잘린\n')
    with pytest.raises(SourceError) as e:
        project.factory().build("sft")
    assert "qa.jsonl, record 50" in str(e.value) and "on_error: quarantine" in str(e.value)
    assert [p.name for p in (project.data / "sft").iterdir() if p.is_dir()] == [first.version]
    assert (project.data / "sft" / "latest").read_text().strip() == first.version


def test_quarantine_counts_and_keeps_bad_records(built):
    project, _ = built
    good = (project.root / "inputs" / "qa.jsonl").read_text()
    (project.root / "inputs" / "qa.jsonl").write_text(good + '{"qid": "q99", "question": "잘린\n{"qid": "q98"}\n')
    body = sft_recipe()
    body["sources"]["qa"]["on_error"] = "quarantine"
    project.recipe("sft", body)
    res = project.factory().build("sft")
    assert res.manifest["sources"]["qa"]["quarantined"] == {"malformed_json": 1, "missing_field": 1}
    lines = (project.data / "sft" / res.version / "quarantine" / "qa.jsonl").read_text().splitlines()
    assert [json.loads(x)["reason"] for x in lines] == ["malformed_json", "missing_field"]


def test_output_format_checks_columns_and_empty_values(project):
    project.jsonl("qa.jsonl", qa_rows(5) + [{"qid": "blank", "question": "질문", "answer": "  ", "kind": "daily"}])
    project.recipe("sft", sft_recipe(steps=[{"template": {}}, {"rename": {"columns": {"output": "completion"}}}]))
    with pytest.raises(RecipeError, match=r"output\.format: 1 rows have an empty or null 'completion' \(first: id 'qa/blank'\)"):
        project.factory().build("sft")
    project.recipe("sft", sft_recipe(steps=[{"template": {}}]))
    with pytest.raises(RecipeError, match="'completion' is missing"):
        project.factory().build("sft")


def test_step_error_names_the_recipe_key(project):
    project.jsonl("qa.jsonl", qa_rows(5))
    project.recipe("sft", sft_recipe(steps=[{"filter": {"length": {"column": "answr", "min": 1}}}]))
    with pytest.raises(RecipeError, match=r"sft\.yaml: steps\[0\]\.filter: no column 'answr'"):
        project.factory().build("sft")


def test_missing_source_path_is_clear(project):
    project.recipe("sft", sft_recipe())
    with pytest.raises(SourceError, match=r"sources\.qa: .*qa\.jsonl: no such file or folder"):
        project.factory().plan("sft")
    body = sft_recipe()
    body["sources"]["qa"]["path"] = os.devnull  # a device: it was listed as a folder, and os.scandir raised
    project.recipe("sft", body)
    with pytest.raises(SourceError, match=r"sources\.qa: .*: neither a file nor a folder"):
        project.factory().plan("sft")


def test_load_round_trip_and_pinned_version(built):
    project, res = built
    dd = datafactory.load("sft", data_dir=project.data)
    assert isinstance(dd, datasets.DatasetDict) and set(dd) == {"train", "test"}
    train = datafactory.load(f"sft@{res.version[:6]}", split="train", data_dir=project.data)
    on_disk = pl.read_parquet(project.data / "sft" / res.version / "train.parquet")
    assert train.to_list() == on_disk.to_dicts()
    with pytest.raises(DataFactoryError, match="no split 'validation'"):
        datafactory.load("sft", split="validation", data_dir=project.data)
    with pytest.raises(DataFactoryError, match="no built dataset named 'sfy' in .*; did you mean 'sft'"):
        datafactory.load("sfy", data_dir=project.data)


def test_card_front_matter_and_plain_datasets_loading(built):
    project, res = built
    vdir = project.data / "sft" / res.version
    card = (vdir / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["language"] == ["ko"] and meta["size_categories"] == ["n<1K"]
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "train.parquet"}
    for section in ("## Sources and licences", "## Build steps", "## Columns", "## Length statistics", "## Examples",
                    "## Prompt template"):
        assert section in card
    plain = datasets.load_dataset(str(vdir), cache_dir=str(project.root / "hf-cache"))  # README configs decide the splits
    assert set(plain) == {"train", "test"} and plain["train"].num_rows == res.manifest["splits"]["train"]


def test_diff_counts_rows_schema_and_recipe(built):
    project, first = built
    project.jsonl("qa.jsonl", [r if r["qid"] != "q1" else {**r, "answer": "바뀐 답변"} for r in qa_rows(55)][2:])
    project.recipe("sft", sft_recipe(steps=sft_recipe()["steps"] + [{"select": {"columns": ["prompt", "completion"]}}]))
    second = project.factory().build("sft")
    d = diff(datafactory.store.Store(project.data), f"sft@{first.version}", f"sft@{second.version}")
    total = {k: sum(s[k] for s in d["splits"].values()) for k in ("added", "removed", "changed")}
    assert total == {"added": 5, "removed": 2, "changed": 0}
    assert set(d["schema"]["removed"]) == {"instruction", "kind"}
    assert any(c["key"].startswith("steps[4]") for c in d["recipe"])


def test_diff_says_what_made_two_versions_and_reports_rows_that_moved_between_splits(built):
    """A changed seed moves rows between splits: moved, not added and removed; the changed input file is named.
    Two versions made by two profiles: the role whose model differs is named (it was `"recipe": []` only)."""
    project, first = built
    project.recipe("sft", sft_recipe(seed=8))
    second = project.factory().build("sft")
    store = datafactory.store.Store(project.data)
    d = diff(store, f"sft@{first.version}", f"sft@{second.version}")
    moved = sum(d["moved"].values())
    assert moved > 0 and set(d["moved"]) <= {"train -> test", "test -> train"}
    assert all(s["added"] == s["removed"] == s["changed"] == 0 for s in d["splits"].values())
    assert sum(s["moved_in"] for s in d["splits"].values()) == moved
    assert {c["key"] for c in d["recipe"]} == {"seed"}
    # another input: the source's files are named as what changed
    project.jsonl("qa.jsonl", qa_rows(51))
    third = project.factory().build("sft")
    d = diff(store, f"sft@{second.version}", f"sft@{third.version}")
    assert [c["where"] for c in d["made"]] == ["sources.qa"] and "input files" in d["made"][0]["what"]


def test_diff_names_the_model_behind_a_role_that_changed(tmp_path):
    import yaml as _yaml

    from tests.conftest import Project

    project = Project(tmp_path)
    project.jsonl("qa.jsonl", qa_rows(6))
    body = sft_recipe(steps=[{"respond": {"roles": ["teacher"], "output": "answer2", "explode": False}},
                             {"template": {}}, {"rename": {"columns": {"answer2": "completion"}}}])
    project.recipe("sft", body)
    (tmp_path / "profiles").mkdir()
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "a.jsonl").write_text("".join(
        json.dumps({"task": "respond", "role": "teacher", "input": r["question"], "answers": [f"답 {r['qid']}"]},
                   ensure_ascii=False) + "\n" for r in qa_rows(6)), "utf-8")
    for name, model in (("one", None), ("two", "teacher-v2")):
        role = {"provider": "demo", "answers": str(answers), **({"model_id": model} if model else {})}
        (tmp_path / "profiles" / f"{name}.yaml").write_text(_yaml.safe_dump({"roles": {"teacher": role}}), "utf-8")
    a = project.factory(llm="one").build("sft")
    b = project.factory(llm="two").build("sft")
    d = diff(datafactory.store.Store(project.data), f"sft@{a.version}", f"sft@{b.version}")
    assert d["recipe"] == [] and any(c["what"] == "role teacher" and c["b"]["model"] == "teacher-v2" for c in d["made"])


def test_diff_sees_changed_rows(built):
    project, first = built
    project.jsonl("qa.jsonl", [r if r["qid"] != "q10" else {**r, "answer": "바뀐 답변"} for r in qa_rows(50)])
    second = project.factory().build("sft")
    d = diff(datafactory.store.Store(project.data), f"sft@{first.version}", f"sft@{second.version}")
    assert sum(s["changed"] for s in d["splits"].values()) == 1
    assert sum(s["added"] + s["removed"] for s in d["splits"].values()) == 0


def test_gc_keeps_latest_and_its_cache(built):
    project, first = built
    project.jsonl("qa.jsonl", qa_rows(60))
    second = project.factory().build("sft")
    (project.data / "sft" / ".tmp-deadbeef").mkdir()
    store = datafactory.store.Store(project.data)
    removed = store.gc(keep=1)
    assert project.data / "sft" / first.version in removed
    assert store.versions("sft") == [second.version]
    assert not (project.data / "sft" / ".tmp-deadbeef").exists()
    again = project.factory().build("sft")  # the latest still loads and is up to date
    assert not again.built
    for key in second.manifest["cache_keys"]:  # every entry's stats stay; frames where they were kept
        assert list((project.data / ".cache").glob(f"*/{key}.json"))
    kept = sorted(p.name for p in (project.data / ".cache").glob("*/*.parquet"))
    assert kept == sorted([f"{second.manifest['cache_keys'][0]}.parquet", f"{second.manifest['cache_keys'][-2]}.parquet"])


def test_gc_leaves_a_dataset_being_built_alone(built):
    project, first = built
    project.jsonl("qa.jsonl", qa_rows(60))
    project.factory().build("sft")
    store = datafactory.store.Store(project.data)
    cache_files = sorted((project.data / ".cache").rglob("*.parquet"))
    from filelock import FileLock
    with FileLock(str(project.data / "sft" / ".lock")):  # another process is building sft
        removed = store.gc(keep=1)
    assert removed == [] and sorted((project.data / ".cache").rglob("*.parquet")) == cache_files
    assert first.version in store.versions("sft")
    dry = store.gc(keep=1, dry_run=True)
    assert project.data / "sft" / first.version in dry and first.version in store.versions("sft")


def test_empty_declared_split_is_reported(project):
    project.jsonl("qa.jsonl", qa_rows(3))
    project.recipe("sft", sft_recipe(splits={"train": 0.99, "test": 0.01}))
    logs = []
    res = project.factory(log=logs.append).build("sft")
    assert res.manifest["splits"] == {"train": 3}
    assert any("split 'test' received no rows" in line for line in logs)


# -- nothing silently empty -------------------------------------------------------------------------------------
def test_a_source_with_no_rows_fails_with_the_reasons(project):
    from tests.conftest import SAMPLES

    project.recipe("talk", sft_recipe(sources={"daily": {"kind": "nikl_dialogue", "path": str(SAMPLES / "nikl_dialogue"),
                                                         "options": {"topics": ["우주여행"]}}}))
    with pytest.raises(SourceError) as e:
        project.factory().build("talk")
    msg = str(e.value)
    assert "talk.yaml: sources.daily: no rows from 31 files (nikl_dialogue): 31 skipped by topic (options.topics" in msg
    assert "`topics: null` keeps every topic" in msg and "allow_empty: true" in msg
    assert not (project.data / "talk" / "latest").exists()


def test_allow_empty_lets_one_source_be_empty(project):
    project.jsonl("qa.jsonl", qa_rows(10))
    (project.root / "inputs" / "talksets-train-1.json").write_text("[]", "utf-8")  # a release with no talksets
    body = sft_recipe()
    body["sources"]["hate"] = {"kind": "aihub_ethics", "path": "inputs"}
    project.recipe("sft", body)
    with pytest.raises(SourceError, match=r"sources\.hate: no rows from 1 files \(aihub_ethics\); fix the options"):
        project.factory().build("sft")
    body["sources"]["hate"]["allow_empty"] = True
    project.recipe("sft", body)
    res = project.factory().build("sft")
    assert res.manifest["sources"]["hate"]["rows"] == 0 and res.manifest["rows"] == 10


def test_mix_allow_short_is_logged_recorded_and_on_the_card(project):
    project.jsonl("qa.jsonl", qa_rows(30))
    body = sft_recipe()
    body["steps"].insert(2, {"mix": {"total": 40, "weights": {"qa": 1}, "allow_short": True}})
    project.recipe("sft", body)
    logs = []
    res = project.factory(log=logs.append).build("sft")
    step = res.manifest["steps"][2]
    assert step["info"]["short"] == {"qa": {"wanted": 40, "have": 30}}
    warning = "mix: source 'qa' fell short: 30 of the 40 rows wanted (allow_short)"
    assert step["warnings"] == [warning] and warning in res.manifest["warnings"]
    assert any(warning in line for line in logs)
    assert f"- {warning}" in (project.data / "sft" / res.version / "README.md").read_text()


def test_progress_bars_get_totals(project):
    project.jsonl("qa.jsonl", qa_rows(20))
    project.recipe("sft", sft_recipe())
    seen = []

    import contextlib

    @contextlib.contextmanager
    def progress(description, total=None):
        done = []
        yield lambda n=1: done.append(n)
        seen.append((description, total, sum(done)))

    project.factory(progress=progress).build("sft")
    assert seen[0] == ("reading qa", 1, 1)  # files
    assert all(total == 20 for _, total, _ in seen[1:])  # rows into each step


def test_two_sources_reading_the_same_input_keep_their_own_names(project):
    """The source cache is per source: two sources with the same input (filtered differently later) must not
    share a cached frame, or the second would carry the first's name and ids."""
    project.jsonl("qa.jsonl", qa_rows(10))
    body = sft_recipe()
    body["sources"]["again"] = dict(body["sources"]["qa"])
    project.recipe("sft", body)
    res = project.factory().build("sft")
    frame = pl.concat([pl.read_parquet(p) for p in (project.data / "sft" / res.version).glob("*.parquet")])
    assert sorted(set(frame["source"])) == ["again", "qa"] and frame.height == 20 and frame["id"].is_unique().all()


def test_a_column_of_lists_or_objects_in_one_source_and_text_in_another_is_named(project):
    """Two sources, or a step's sources and the other rows, whose shared column holds objects or lists on one side
    and text on the other: polars made the objects text ("{1}") without a word, or failed to cast the lists inside
    polars; each is now a recipe error naming the sources or the step."""
    rows = qa_rows(6)
    project.jsonl("qa.jsonl", rows)
    project.jsonl("meta.jsonl", [{**r, "qid": f"m{r['qid']}", "kind": {"tag": r["kind"]}} for r in rows])
    project.jsonl("tags.jsonl", [{**r, "qid": f"t{r['qid']}", "kind": [r["kind"]]} for r in rows])
    body = sft_recipe()
    for name, file in (("meta", "meta.jsonl"), ("tags", "tags.jsonl")):
        body["sources"] = {"qa": sft_recipe()["sources"]["qa"],
                           name: {**sft_recipe()["sources"]["qa"], "path": f"inputs/{file}"}}
        project.recipe("sft", body)
        kind = "objects" if name == "meta" else "lists"
        with pytest.raises(RecipeError, match=f"sources: column 'kind' holds text in source 'qa' and {kind} in source "
                                              f"'{name}', which one column cannot hold"):
            project.factory().build("sft")
    project.jsonl("none.jsonl", [{**r, "qid": f"n{r['qid']}", "kind": None} for r in rows])
    body["sources"] = {"none": {**sft_recipe()["sources"]["qa"], "path": "inputs/none.jsonl"},  # nulls only: no kind
                       "meta": {**sft_recipe()["sources"]["qa"], "path": "inputs/meta.jsonl"},
                       "qa": sft_recipe()["sources"]["qa"]}
    project.recipe("sft", body)
    with pytest.raises(RecipeError, match="column 'kind' holds objects in source 'meta' and text in source 'qa'"):
        project.factory().build("sft")
    body["sources"] = {"qa": sft_recipe()["sources"]["qa"],
                       "tags": {"kind": "files", "path": "inputs/tags.jsonl", "options": {
                           "id": "qid", "fields": {"instruction": "question", "reply": "answer", "labels": "kind"}}}}
    body["steps"] = [{"rename": {"columns": {"labels": "output"}, "sources": ["tags"]}}] + body["steps"]
    project.recipe("sft", body)
    with pytest.raises(RecipeError, match=r"steps\[0\]\.rename: the step makes column 'output' hold lists in the rows "
                                          r"of its sources, where the other rows hold text"):
        project.factory().build("sft")


def test_near_dedup_in_a_recipe_publishes_who_was_dropped_for_whom(project):
    import random

    rng = random.Random(3)
    words = lambda n: " ".join("".join(chr(0xAC00 + rng.randrange(2000)) for _ in range(3)) for _ in range(n))  # noqa: E731
    rows = [{"qid": f"q{i}", "question": words(4), "answer": words(8), "kind": "daily"} for i in range(30)]
    for k in range(5):  # near copies: the same answer with an ending added
        rows.append({**rows[k], "qid": f"copy{k}", "answer": rows[k]["answer"] + "요!"})
    project.jsonl("qa.jsonl", rows)
    body = sft_recipe()
    body["steps"].insert(1, {"near_dedup": {"columns": ["instruction", "output"], "threshold": 0.7}})
    project.recipe("sft", body)
    res = project.factory().build("sft")
    rec = next(s for s in res.manifest["steps"] if s["step"] == "near_dedup")
    assert rec["dropped"] == {"near_duplicate": 5} and rec["tables"] == {"near_duplicates": "tables/near_duplicates.parquet"}
    table = pl.read_parquet(project.data / "sft" / res.version / "tables" / "near_duplicates.parquet")
    assert sorted(zip(table["id"], table["kept_id"])) == [(f"qa/copy{k}", f"qa/q{k}") for k in range(5)]
    # a later change reuses the kept near_dedup output and publishes its table again
    body["steps"][-1] = {"rename": {"columns": {"output": "completion", "kind": "category"}}}
    project.recipe("sft", body)
    again = project.factory().build("sft")
    assert next(s for s in again.manifest["steps"] if s["step"] == "near_dedup")["cached"]
    assert (project.data / "sft" / again.version / "tables" / "near_duplicates.parquet").exists()


def test_columns_no_step_reads_are_dropped_after_the_source(project, monkeypatch):
    """Projection pushdown: with a final `select`, the steps see only the columns they read or output; the
    dataset is the same as without it."""
    from datafactory import engine

    project.jsonl("qa.jsonl", [{**r, "extra": "x" * 50, "input": ""} for r in qa_rows(40)])
    body = sft_recipe()
    body["sources"]["qa"]["options"]["fields"].update({"extra": "extra", "input": "input"})
    body["steps"].append({"select": {"columns": ["prompt", "completion"]}})
    project.recipe("sft", body)
    seen = columns_seen(monkeypatch)
    res = project.factory().build("sft")
    assert seen[0] == {"id", "source", "instruction", "output", "input"}  # not kind, not extra; input: the template reads it
    cached = pl.read_parquet(project.data / ".cache" / "sources" / f"{res.manifest['sources']['qa']['cache_key']}.parquet")
    assert {"kind", "extra"} <= set(cached.columns) and cached.height == 40  # the cache keeps every column
    monkeypatch.setattr(engine, "needed_columns", lambda steps: None)
    (project.data / "sft" / res.version).rename(project.data / "sft" / "projected")
    again = project.factory().build("sft")
    assert again.version == res.version
    for split in res.manifest["files"]:
        assert pl.read_parquet(project.data / "sft" / "projected" / f"{split}.parquet").equals(
            pl.read_parquet(project.data / "sft" / res.version / f"{split}.parquet"))


def test_an_unchanged_listing_reads_no_digest_and_a_touched_file_keeps_its_version(built, monkeypatch):
    project, first = built
    from datafactory.fingerprints import FingerprintCache

    def boom(*a, **k):
        raise AssertionError("per-file digests looked up for an unchanged listing")

    monkeypatch.setattr(FingerprintCache, "entries", boom)
    monkeypatch.setattr(FingerprintCache, "digest", boom)
    assert project.factory().plan("sft").version == first.version
    monkeypatch.undo()
    qa = project.root / "inputs" / "qa.jsonl"
    qa.touch()  # a new mtime, the same bytes: re-hashed once, the same version
    import os
    os.utime(qa, ns=(qa.stat().st_atime_ns, qa.stat().st_mtime_ns + 10**9))
    assert project.factory().plan("sft").version == first.version
    project.jsonl("qa.jsonl", qa_rows(51))
    assert project.factory().plan("sft").version != first.version


def test_a_cold_build_reads_each_input_once_and_remembers_its_digest(project, monkeypatch):
    """New files are hashed from the bytes the parser reads, not read a second time in planning."""
    import datafactory.fingerprints as fingerprints
    import datafactory.hashing as hashing

    project.jsonl("qa.jsonl", qa_rows(30))
    project.recipe("sft", sft_recipe())
    calls = []
    real = hashing.file_digest
    monkeypatch.setattr(hashing, "file_digest", lambda p, *a: calls.append(p) or real(p, *a))
    res = project.factory().build("sft")
    assert res.built and calls == []
    qa = str(project.root / "inputs" / "qa.jsonl")
    assert fingerprints.FingerprintCache(project.data / ".cache" / "fingerprints.msgpack").entries()[qa][2] == real(qa)
    monkeypatch.undo()
    # the same bytes with a new mtime: read and hashed again, the same version, nothing left behind
    import os
    st = os.stat(qa)
    os.utime(qa, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = project.factory().build("sft")
    assert not again.built and again.version == res.version
    assert not list((project.data / ".cache" / "sources").glob(".*tmp"))
    assert project.factory().plan("sft").version == res.version


def test_a_failing_source_read_leaves_no_partial_cache(project):
    project.jsonl("qa.jsonl", qa_rows(5))
    (project.root / "inputs" / "qa.jsonl").write_text("{broken\n", "utf-8")
    project.recipe("sft", sft_recipe())
    with pytest.raises(DataFactoryError, match="qa.jsonl"):
        project.factory().build("sft")
    left = [p.name for p in (project.data / ".cache" / "sources").glob("*")] if (project.data / ".cache" / "sources").exists() else []
    assert not [n for n in left if n.endswith(".parquet") or n.endswith(".tmp")]


def test_a_row_id_twice_fails_the_build_naming_it(built):
    """The last check before publishing: ids are unique (hashes first; equal hashes are compared as ids)."""
    project, _ = built
    factory = project.factory()
    recipe = factory.recipe("sft")
    ok = pl.DataFrame({"id": [f"qa/q{i}" for i in range(1000)], "source": "qa", "prompt": "p", "completion": "c"})
    assert factory._finish(recipe, ok).height == 1000
    twice = pl.concat([ok, ok.slice(517, 1)])
    with pytest.raises(RecipeError, match="row id 'qa/q517' occurs twice"):
        factory._finish(recipe, twice)


def test_inputs_under_folder_names_that_are_not_utf8_build_and_rebuild(project):
    """A Korean Windows zip unpacked by `unzip` leaves folder names in cp949 bytes, which Python gives as
    surrogates: the build died saving the fingerprint cache (UnicodeEncodeError). Now the files are read by their
    real paths, named in the manifest as cp949 text (bytes that are no text either: with \\x escapes), and the
    digests are remembered by those paths; a touched file is not a new version."""
    import os

    import datafactory.fingerprints as fingerprints
    import datafactory.hashing as hashing

    root = os.fsencode(project.root / "inputs")
    for folder in ["147.텍스트 윤리검증 데이터".encode("cp949"), b"odd\xff"]:
        os.makedirs(os.path.join(root, folder))
        with open(os.path.join(root, folder, b"qa.jsonl"), "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa_rows(20, 20 * len(folder))))
    body = sft_recipe()
    body["sources"]["qa"]["path"] = "inputs"
    project.recipe("sft", body)
    res = project.factory().build("sft")
    listed = (project.data / "sft" / res.version / "inputs" / "qa.tsv").read_text("utf-8").splitlines()[1:]
    assert [line.split("\t")[0] for line in listed] == ["147.텍스트 윤리검증 데이터/qa.jsonl", "odd\\xff/qa.jsonl"]
    path = os.path.join(root, b"odd\xff", b"qa.jsonl")
    cache = fingerprints.FingerprintCache(project.data / ".cache" / "fingerprints.msgpack")
    assert cache.entries()[os.fsdecode(path)][2] == hashing.file_digest(path)  # kept, by the real path
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = project.factory().build("sft")
    assert not again.built and again.version == res.version


def test_the_same_files_under_another_root_are_other_names_and_another_version(project):
    """Row keys hold a file's name relative to where the source points (`hh/qa.jsonl#0`, `qa.jsonl#0`). The
    remembered fingerprint of a listing was keyed by the files' absolute paths alone, so pointing the source one
    folder down at the same files gave the earlier version back, with the earlier keys; a fresh data folder gave
    another."""
    rows = qa_rows(10)
    project.jsonl("hh/qa.jsonl", rows)
    body = sft_recipe()
    body["sources"]["qa"]["path"] = "inputs"
    project.recipe("sft", body)
    top = project.factory().build("sft")
    down = project.factory(overrides={"qa": "inputs/hh"}).build("sft")
    assert down.built and down.version != top.version
    assert project.factory().build("sft").version == top.version
    import shutil

    shutil.rmtree(project.data)
    assert project.factory(overrides={"qa": "inputs/hh"}).build("sft").version == down.version


def test_decomposed_hangul_names_from_a_mac_give_the_same_names_and_version_as_composed_ones(project, tmp_path):
    """Finder and zips made on a Mac name files in decomposed Hangul (NFD, the "자소 분리" of names sent from
    macOS): row keys and the fingerprint took those bytes, so the same files gave another version id than on the
    colleague's Linux disk; and a path typed composed in the recipe did not find the folder."""
    import shutil
    import unicodedata
    import zipfile

    folder = "말뭉치 모음/질문"
    for form, root in (("NFC", project.root / "inputs"), ("NFD", tmp_path / "mac")):
        path = root / unicodedata.normalize(form, folder) / unicodedata.normalize(form, "대화.jsonl")
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa_rows(12)), "utf-8")
    body = sft_recipe()
    del body["sources"]["qa"]["options"]["id"]  # keys from the file's name: `말뭉치 모음/질문/대화.jsonl#3`
    body["sources"]["qa"]["path"] = "inputs"
    project.recipe("sft", body)
    linux = project.factory().build("sft")
    ids = pl.read_parquet(project.data / "sft" / linux.version / "train.parquet")["id"].to_list()
    assert all(i.startswith("qa/말뭉치 모음/질문/대화.jsonl#") and unicodedata.is_normalized("NFC", i) for i in ids)
    shutil.rmtree(project.data)
    mac = project.factory(overrides={"qa": str(tmp_path / "mac")}).build("sft")
    assert mac.version == linux.version
    # the composed spelling of a decomposed folder, and a zip made on a Mac (UTF-8 names, decomposed)
    shutil.rmtree(project.data)
    typed = project.factory(overrides={"qa": str(tmp_path / "mac" / "말뭉치 모음")}).build("sft")
    assert typed.built
    with zipfile.ZipFile(tmp_path / "mac.zip", "w") as zf:
        zf.write(next((tmp_path / "mac").rglob("*.jsonl")), unicodedata.normalize("NFD", f"{folder}/대화.jsonl"))
    from datafactory.sources.inputs import resolve_inputs

    assert [f.name for f in resolve_inputs(tmp_path / "mac.zip", ["*.jsonl"])] == ["mac.zip!말뭉치 모음/질문/대화.jsonl"]


@pytest.mark.parametrize("harm", ["delete", "truncate"])
def test_a_damaged_version_is_named_everywhere_and_build_makes_it_again(built, harm, tmp_path):
    """A split file deleted or cut short after the build: `build` said the version was up to date and `push
    --dry-run` copied the damage. Now `show`, `diff`, `load` and `push` stop with one line saying to rebuild, and
    `build` makes the same version again (same id, same bytes) from its cache."""
    import datafactory
    from datafactory.diff import diff
    from datafactory.errors import StoreError
    from datafactory.hub import push
    from datafactory.store import Store

    project, res = built
    folder = project.data / "sft" / res.version
    train = folder / "train.parquet"
    original = train.read_bytes()
    if harm == "delete":
        train.unlink()
        said = "train.parquet is missing"
    else:
        train.write_bytes(original[: len(original) // 2])
        said = f"train.parquet has {len(original) // 2:,} of its {len(original):,} bytes"
    store = Store(project.data)
    for attempt in (lambda: datafactory.load("sft", data_dir=project.data),
                    lambda: diff(store, f"sft@{res.version}", f"sft@{res.version}"),
                    lambda: push(store, "sft", "org/x", allow_restricted=True, dry_run=tmp_path / "up")):
        with pytest.raises(StoreError, match=rf"sft@{res.version} is damaged: {said}.*datafactory build sft"):
            attempt()
    assert not (tmp_path / "up").exists() or not any((tmp_path / "up").iterdir())
    again = project.factory().build("sft")
    assert again.built and again.version == res.version and train.read_bytes() == original
    assert datafactory.load("sft", split="train", data_dir=project.data).num_rows == res.manifest["splits"]["train"]


def test_a_missing_column_is_named_with_the_columns_the_sources_give(built):
    """`select` of a column no source has listed `id, source` as the columns (the engine had dropped the columns no
    step reads): the error now names what the sources give."""
    from datafactory.errors import RecipeError

    project, _ = built
    project.recipe("sft", sft_recipe(steps=[{"select": {"columns": ["nope"]}}], output={"format": "prompt"}))
    with pytest.raises(RecipeError, match=r"steps\[0\]\.select: no column 'nope' .*; the sources give instruction, "
                                          r"output, kind"):
        project.factory().build("sft")


def test_a_request_key_is_the_same_digest_whichever_writer_writes_its_messages():
    """``digest_with_messages`` (msgspec for chat messages of text) gives ``digest``'s bytes: every control
    character, line and paragraph separators, quotes, backslashes, emoji, Hangul, a BOM, keys out of order, extra
    keys, empty lists; anything not text goes through ``digest`` itself."""
    import random

    from datafactory.hashing import digest, digest_with_messages
    from datafactory.llm.types import request_key

    rnd = random.Random(7)
    alphabet = [chr(i) for i in range(0x30)] + list("\u2028\u2029\x7f\x85\ufeff😀가힣ㅋ\\\"/<>&é\u0301 aZ{}[]:,")

    def text():
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 24)))

    for _ in range(3000):
        messages = [{k: text() for k in rnd.sample(["role", "content", "name", text()], rnd.randint(0, 3))}
                    for _ in range(rnd.randint(0, 3))]
        before, after = [text(), "openai"][:rnd.randint(0, 2)], [{"temperature": 0.7, "seed": 3}, 2][:rnd.randint(0, 2)]
        assert digest_with_messages(before, messages, after) == digest(*before, messages, *after), (messages, before)
    for after in ([{"t": 1}, 1], [{"t": 1.0}, 1], [{"t": True}, True], [{"t": [1, "a"]}, 1.0], [{"t": {"x": None}}, 1]):
        assert digest_with_messages(["a"], [], after) == digest("a", [], *after)  # equal in Python, not in JSON
    odd = [[{"role": "user", "content": None}], [{"role": "user", "content": [{"type": "text", "text": "가"}]}],
           [{"role": "user", "content": 1.5}], ({"role": "user", "content": "가"},), [{1: "가"}]]
    for messages in odd:
        assert digest_with_messages(["x"], messages, [1]) == digest("x", messages, 1)
    messages = [{"role": "system", "content": "친절하게"}, {"role": "user", "content": "하늘은 왜\n파란가요?"}]
    assert request_key("openai", "gpt-4o-mini", messages, {"temperature": 0.7, "top_p": None}, 1) == digest(
        "llm-request", "openai", "gpt-4o-mini", messages, {"temperature": 0.7}, 1)
