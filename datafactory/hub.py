"""push: a built version (split files, manifest, card, LICENSE.md, plots) to a Hugging Face Hub dataset repo.

What it guards:

- Licences. A dataset holding rows from a source whose terms forbid redistribution (NIKL, AIHub, or an
  upstream dataset built from them) is pushed only to a private repo (``private=True``, checked on the Hub
  after creation: an existing public repo is refused), or with ``allow_restricted=True``, the user's word
  that they may publish it.
- Local paths. The pushed manifest keeps paths relative to the project; a path outside it becomes its last
  component, so the user's folder layout never leaves the machine. Quarantined records are never pushed.
- Versions. Each pushed version is tagged with its version id, so ``load_dataset(repo, revision=VERSION)``
  gives exactly that version; pushing a version whose tag exists is a no-op.
- The token comes from ``HF_TOKEN`` or the saved ``hf auth login``; it is passed to the client only and never
  written anywhere. Any failure of the Hub client (no network, a bad token) is one error line.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from datafactory.card import loading_section
from datafactory.errors import DataFactoryError
from datafactory.store import Store

PATH_KEYS = {"path", "recipe_file"}


def _shareable_path(value: str) -> str:
    p = Path(value).expanduser()
    return p.name if p.is_absolute() else value


def shareable_manifest(manifest: dict) -> dict:
    """The manifest as it may leave the machine: every absolute path (a ``path``/``recipe_file`` field, or
    any text that names an existing absolute path, e.g. a template file) cut to its last component."""

    def walk(obj, key=None):
        if isinstance(obj, dict):
            return {k: walk(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if isinstance(obj, str) and obj and (key in PATH_KEYS or (obj.startswith(("/", "~")) and "\n" not in obj
                                                                   and len(obj) < 4096 and Path(obj).expanduser().exists())):
            return _shareable_path(obj)
        return obj

    return walk(manifest)


def restrictions(manifest: dict) -> list[dict]:
    """The sources (upstream included) whose terms forbid publishing this dataset."""
    terms = manifest.get("terms")
    if terms is not None:
        return terms.get("restrictions", [])
    from datafactory.sources import SOURCES  # a manifest written before terms were recorded: ask the kinds

    return [{"source": n, "license": s.get("license", "")} for n, s in manifest["sources"].items()
            if getattr(SOURCES.get(s["kind"]), "redistribute", None) is False]


def assemble(store: Store, name: str, version: str, dest: Path, repo: str | None) -> list[Path]:
    """Write the upload folder to ``dest`` (which must be new or empty): the split files, the shareable
    manifest, LICENSE.md, the plots and the card, whose loading example names ``repo`` instead of the store."""
    manifest = store.check(name, version)
    src = store.version_dir(name, version)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataFactoryError(f"{dest} is not an empty folder; give --dry-run a new or empty folder "
                               "(nothing was written)")
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in [*manifest["files"].values(), "LICENSE.md", *manifest.get("plots", [])]:
        if (src / f).exists():
            shutil.copy2(src / f, dest / f)
            out.append(dest / f)
    (dest / "manifest.json").write_text(json.dumps(shareable_manifest(manifest), ensure_ascii=False, indent=2), "utf-8")
    card = (src / "README.md").read_text("utf-8")
    if repo:
        card = card.replace(loading_section(name, version), loading_section(name, version, repo))
    (dest / "README.md").write_text(card, "utf-8")
    return sorted(out + [dest / "manifest.json", dest / "README.md"])


def check_terms(manifest: dict, ref: str, *, private: bool, allow_restricted: bool) -> None:
    found = restrictions(manifest)
    if found and not private and not allow_restricted:
        which = "; ".join(f"{r['source']} ({r.get('license') or 'no redistribution'})" for r in found)
        raise DataFactoryError(
            f"{ref} holds rows from sources whose terms forbid redistribution: {which}. Push it with --private "
            "(a private repo for the people licensed to use them), or, if you have the right to publish it, "
            "add --allow-restricted")


def push(store: Store, ref: str, repo: str, *, private: bool = False, allow_restricted: bool = False,
         dry_run: Path | None = None, token: str | None = None, log=None) -> dict:
    log = log or (lambda msg: None)
    name, version = store.resolve(ref)
    ref = f"{name}@{version}"
    if "/" not in repo or repo.count("/") != 1 or not all(repo.split("/")):
        raise DataFactoryError(f"--repo '{repo}' is not ORG/NAME")
    manifest = store.check(name, version)
    check_terms(manifest, ref, private=private, allow_restricted=allow_restricted)
    unverified = manifest.get("terms", {}).get("unverified", [])
    if unverified and not private:
        log("note: the terms of " + ", ".join(r["source"] for r in unverified) + " do not say whether they may be "
            "published; check them before making the repo public")
    if dry_run is not None:
        files = assemble(store, name, version, Path(dry_run), repo)
        return {"ref": ref, "repo": repo, "files": [str(f) for f in files], "dry_run": True}

    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise DataFactoryError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again")
    api = HfApi(token=token)

    def hub(what: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except DataFactoryError:
            raise
        except Exception as e:  # the Hub client's failures (no network, 401, 404...): one line, not a traceback
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataFactoryError(f"push to {repo} failed while {what}: {type(e).__name__}: {first}; "
                                   "nothing in the store changed (check the network, HF_TOKEN and the repo name)") from None

    hub("creating the repo", api.create_repo, repo, repo_type="dataset", private=private, exist_ok=True)
    info = hub("reading the repo", api.repo_info, repo, repo_type="dataset")
    if private and not getattr(info, "private", False):
        raise DataFactoryError(f"{repo} exists and is public; --private asked for a private repo. Make it private on "
                               "the Hub (Settings) or pick another name; nothing was uploaded")
    log(f"{repo} is {'private' if getattr(info, 'private', False) else 'PUBLIC: anyone can download it'}")
    refs = hub("listing tags", api.list_repo_refs, repo, repo_type="dataset")
    if any(t.name == version for t in getattr(refs, "tags", [])):
        return {"ref": ref, "repo": repo, "files": [], "dry_run": False, "pushed": False,
                "url": f"https://huggingface.co/datasets/{repo}/tree/{version}"}
    with tempfile.TemporaryDirectory(prefix="datafactory-push-") as tmp:
        files = assemble(store, name, version, Path(tmp), repo)
        # the repo holds one version at a time: split files and plots of an older version go
        commit = hub("uploading", api.upload_folder, repo_id=repo, repo_type="dataset", folder_path=tmp,
                     commit_message=f"datafactory: {ref}", delete_patterns=["*.parquet", "*.png"])
    hub("tagging the version", api.create_tag, repo, tag=version, repo_type="dataset",
        revision=getattr(commit, "oid", None), tag_message=f"datafactory: {ref}")
    return {"ref": ref, "repo": repo, "files": [f.name for f in files], "dry_run": False, "pushed": True,
            "commit": getattr(commit, "oid", None), "url": getattr(commit, "commit_url", None)}
