"""push: a built version (split files, manifest, card) to a Hugging Face Hub dataset repo.

The token comes from ``HF_TOKEN`` or the saved ``hf auth login``; it is passed to the client only and never
written anywhere. ``dry_run`` writes exactly the folder that would be uploaded. Quarantined records are never
pushed: they are raw corpus text whose licence forbids redistribution.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from datafactory.card import local_load_line
from datafactory.errors import DataFactoryError
from datafactory.store import Store


def assemble(store: Store, name: str, version: str, dest: Path, repo: str | None) -> list[Path]:
    """Write the upload folder to ``dest``: the split files, manifest.json and the card, whose loading
    example names ``repo`` instead of the local folder."""
    manifest = store.manifest(name, version)
    src = store.version_dir(name, version)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in manifest["files"].values():
        shutil.copy2(src / f, dest / f)
        out.append(dest / f)
    shutil.copy2(src / "manifest.json", dest / "manifest.json")
    card = (src / "README.md").read_text("utf-8")
    if repo:
        card = card.replace(local_load_line(name, version), f'load_dataset("{repo}")')
    (dest / "README.md").write_text(card, "utf-8")
    return sorted(out + [dest / "manifest.json", dest / "README.md"])


def push(store: Store, ref: str, repo: str, *, private: bool = False, dry_run: Path | None = None,
         token: str | None = None) -> dict:
    name, version = store.resolve(ref)
    if "/" not in repo:
        raise DataFactoryError(f"--repo '{repo}' is not ORG/NAME")
    if dry_run is not None:
        files = assemble(store, name, version, Path(dry_run), repo)
        return {"ref": f"{name}@{version}", "repo": repo, "files": [str(f) for f in files], "dry_run": True}

    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = token or get_token()
    if not token:
        raise DataFactoryError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="datafactory-push-") as tmp:
        files = assemble(store, name, version, Path(tmp), repo)
        try:
            api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=tmp,
                                     commit_message=f"datafactory: {name}@{version}")
        except HfHubHTTPError as e:
            raise DataFactoryError(f"push to {repo} failed: {str(e).splitlines()[0]}; nothing in the store changed") from None
    return {"ref": f"{name}@{version}", "repo": repo, "files": [f.name for f in files], "dry_run": False,
            "commit": getattr(info, "oid", None), "url": getattr(info, "commit_url", None)}
