"""The offline loop, run once per session in a copy of the project: what the trainer tests look at."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from typing import NamedTuple

import pytest

from tests.conftest import REPO

TRAINERS = REPO / "trainers"


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DATAFACTORY_")}
    e.update(TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    return e


def run(root: Path, *args: str, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable if a == "python" else a for a in args]
    p = subprocess.run(cmd, cwd=root, env={**env(), **(extra_env or {})}, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p


def copy_project(root: Path) -> Path:
    """The recipes, profiles and samples of the repo in ``root`` (a project whose data/ and models/ are new)."""
    for d in ("recipes", "profiles"):
        shutil.copytree(REPO / d, root / d)
    shutil.copytree(REPO / "data" / "samples", root / "data" / "samples")
    return root


def latest_versions(data: Path) -> dict[str, tuple[str, list[str]]]:
    """Each dataset of a store: its ``latest`` version and every version folder."""
    return {d.name: ((d / "latest").read_text().strip(), sorted(v.name for v in d.iterdir() if v.is_dir()))
            for d in sorted(data.iterdir()) if (d / "latest").is_file()}


class Loop(NamedTuple):
    root: Path  # the project the loop ran in
    out: str  # what it printed
    users: dict  # the project's own datasets (data/) before the loop: latest_versions()

    @property
    def data(self) -> Path:  # the loop's own store
        return self.root / "loop" / "data"


@pytest.fixture(scope="session")
def loop(tmp_path_factory) -> Loop:
    """``python trainers/loop.py`` in a fresh copy of the project where the user had built rm_v3 and ppo_v1 (README
    command 1, with the sample answers) first."""
    root = copy_project(tmp_path_factory.mktemp("loop"))
    for name in ("rm_v3", "ppo_v1"):
        run(root, "python", "-m", "datafactory", "-q", "build", name)
    users = latest_versions(root / "data")
    p = run(root, "python", str(TRAINERS / "loop.py"))
    return Loop(root, p.stdout, users)
