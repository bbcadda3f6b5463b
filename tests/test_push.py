"""push: licences decide who may publish, no local path leaves the machine, each version is a Hub tag, and
every failure is one line. The Hub is a fake with the real client's method signatures (no network here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import datafactory
from datafactory.errors import DataFactoryError
from datafactory.hub import push
from datafactory.store import Store
from tests.conftest import SAMPLES, sft_recipe


class FakeHub:
    """The HfApi methods push uses, recording calls; a repo keeps its visibility and tags."""

    repos: dict[str, dict] = {}
    calls: list[tuple] = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False, **kw):
        FakeHub.calls.append(("create_repo", repo_id, private))
        FakeHub.repos.setdefault(repo_id, {"private": bool(private), "tags": [], "files": []})

    def repo_info(self, repo_id, *, repo_type=None, **kw):
        return type("Info", (), {"private": FakeHub.repos[repo_id]["private"]})()

    def list_repo_refs(self, repo_id, *, repo_type=None, **kw):
        tags = [type("Ref", (), {"name": t})() for t in FakeHub.repos[repo_id]["tags"]]
        return type("Refs", (), {"tags": tags})()

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, commit_message=None, **kw):
        FakeHub.calls.append(("upload_folder", repo_id, commit_message, kw.get("delete_patterns")))
        FakeHub.repos[repo_id]["files"] = {p: open(os.path.join(folder_path, p), "rb").read() for p in sorted(os.listdir(folder_path))}
        return type("Commit", (), {"oid": "c0ffee", "commit_url": f"https://hub/{repo_id}/commit/c0ffee"})()

    def create_tag(self, repo_id, *, tag, revision=None, repo_type=None, tag_message=None, **kw):
        FakeHub.calls.append(("create_tag", repo_id, tag, revision))
        FakeHub.repos[repo_id]["tags"].append(tag)


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    FakeHub.repos, FakeHub.calls = {}, []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_written")
    return FakeHub


@pytest.fixture
def restricted(project, tmp_path):
    """A dataset from the NIKL samples, given by an absolute path outside the project (as --source does)."""
    body = sft_recipe(sources={"daily": {"kind": "nikl_dialogue", "path": str(SAMPLES / "nikl_dialogue")}},
                      steps=[{"template": {}}, {"rename": {"columns": {"output": "completion"}}}])
    project.recipe("talk", body)
    return project, project.factory().build("talk")


def test_public_push_of_a_no_redistribution_source_is_refused(restricted, hub):
    project, res = restricted
    with pytest.raises(DataFactoryError, match=r"talk@\w+ holds rows from sources whose terms forbid redistribution: "
                                               r"daily \(국립국어원.*--private.*--allow-restricted"):
        push(Store(project.data), "talk", "org/talk")
    assert hub.calls == []  # nothing was created or uploaded
    out = push(Store(project.data), "talk", "org/talk", private=True)
    assert out["pushed"] and hub.repos["org/talk"]["private"]
    push(Store(project.data), "talk", "org/public-ok", allow_restricted=True)
    assert "org/public-ok" in hub.repos


def test_restrictions_pass_through_a_dataset_source(restricted, hub):
    project, res = restricted
    project.recipe("prompts", {"sources": {"talk": {"kind": "dataset", "options": {"name": "talk"}}},
                               "steps": [{"select": {"columns": ["prompt"]}}], "output": {"format": "prompt"}})
    m = project.factory().build("prompts").manifest
    assert m["terms"]["restrictions"][0]["source"] == f"talk <- talk@{res.version}: daily"
    with pytest.raises(DataFactoryError, match="forbid redistribution"):
        push(Store(project.data), "prompts", "org/prompts")


def test_private_push_to_an_existing_public_repo_is_refused(restricted, hub):
    project, _ = restricted
    hub.repos["org/talk"] = {"private": False, "tags": [], "files": []}
    with pytest.raises(DataFactoryError, match="org/talk exists and is public"):
        push(Store(project.data), "talk", "org/talk", private=True)
    assert not any(c[0] == "upload_folder" for c in hub.calls)


def test_pushed_files_hold_no_local_path_or_secret(restricted, hub):
    project, res = restricted
    push(Store(project.data), "talk", "org/talk", private=True)
    files = hub.repos["org/talk"]["files"]
    assert sorted(files) == ["LICENSE.md", "README.md", "lengths.png", "manifest.json", "test.parquet", "train.parquet"]
    local = json.loads((project.data / "talk" / res.version / "manifest.json").read_text())
    assert local["sources"]["daily"]["path"] == str(SAMPLES / "nikl_dialogue")  # outside the project: kept locally
    assert local["recipe_file"] == "recipes/talk.yaml"  # inside the project: relative
    for name, data in files.items():
        for secret in (str(project.root).encode(), str(SAMPLES).encode(), b"hf_secret", os.path.expanduser("~").encode() + b"/"):
            assert secret not in data, (name, secret)
    pushed = json.loads(files["manifest.json"])
    assert pushed["sources"]["daily"]["path"] == "nikl_dialogue" and pushed["recipe"]["sources"]["daily"]["path"] == "nikl_dialogue"


def test_each_version_is_a_tag_and_pushing_it_again_is_a_noop(built, hub):
    project, res = built
    out = push(Store(project.data), "sft", "org/sft")
    assert out["pushed"] and ("create_tag", "org/sft", res.version, "c0ffee") in hub.calls
    assert hub.calls[1][3] == ["*.parquet", "*.png"]  # a split gone from the new version goes from the repo too
    n = len(hub.calls)
    again = push(Store(project.data), f"sft@{res.version}", "org/sft")
    assert not again["pushed"] and len(hub.calls) == n + 1  # only create_repo (exist_ok); no upload, no tag
    card = hub.repos["org/sft"]["files"]["README.md"].decode()
    assert f'load_dataset("org/sft", revision="{res.version}")' in card
    assert "datafactory.load" not in card and "data_dir=" not in card  # the Hub id only


def test_dry_run_writes_the_upload_and_refuses_a_non_empty_folder(built, tmp_path, monkeypatch):
    project, res = built
    store = Store(project.data)
    out = push(store, "sft", "org/ko-sft", dry_run=tmp_path / "up")
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == sorted(os.path.basename(f) for f in out["files"])
    readme = (project.root / "README.md")
    readme.write_text("the project's own readme", "utf-8")
    monkeypatch.chdir(project.root)
    for target in (".", str(project.data / "sft" / res.version), str(tmp_path / "up")):
        with pytest.raises(DataFactoryError, match="is not an empty folder"):
            push(store, "sft", "org/ko-sft", dry_run=target)
    assert readme.read_text("utf-8") == "the project's own readme"


def test_bad_repo_and_missing_token(built, monkeypatch):
    project, _ = built
    with pytest.raises(DataFactoryError, match="is not ORG/NAME"):
        push(Store(project.data), "sft", "just-a-name")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(DataFactoryError, match="no Hugging Face token"):
        push(Store(project.data), "sft", "org/x")


@pytest.mark.slow
def test_push_without_a_network_is_one_error_line(built):
    """The real Hub client against an address where nothing listens: one `error:` line, exit 1."""
    project, _ = built
    env = {**os.environ, "HF_TOKEN": "hf_x", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2"}
    proc = subprocess.run([sys.executable, "-m", "datafactory", "push", "sft", "--repo", "org/x", "--data", str(project.data), "-q"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("error: push to org/x failed while creating the repo")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert datafactory.load("sft", data_dir=project.data)["train"].num_rows > 0
