"""The offline loop, run once per session in a copy of the project: what the trainer tests look at."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def loop(tmp_path_factory) -> tuple[Path, str]:
    """``python trainers/loop.py`` in a fresh copy of the project: (root, its output)."""
    root = copy_project(tmp_path_factory.mktemp("loop"))
    p = run(root, "python", str(TRAINERS / "loop.py"))
    return root, p.stdout
