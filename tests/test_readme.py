"""The README's commands, run as typed on the shipped samples (placeholders made real: a zip of the samples for a
download, the built versions for `@3f2a9c`), each exiting as the README says it does."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text("utf-8")
    block = text.split("## What you type", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip().startswith("datafactory")]


def test_every_command_of_the_readme_runs_as_typed(tmp_path):
    root = tmp_path / "project"
    for d in ("recipes", "profiles"):
        shutil.copytree(REPO / d, root / d)
    shutil.copytree(SAMPLES, root / "data" / "samples")
    download = tmp_path / "NIKL_DIALOGUE_2021_v1.1.zip"  # a download, made of the samples
    with zipfile.ZipFile(download, "w") as z:
        for f in sorted((SAMPLES / "nikl_dialogue").rglob("*.json")):
            z.write(f, f.relative_to(SAMPLES / "nikl_dialogue"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAFACTORY_", "OPENAI_"))}

    def run(line: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "datafactory", *shlex.split(line)[1:]]
        return subprocess.run(argv, cwd=root, capture_output=True, text=True, env=env, timeout=600)

    first = run("datafactory build rm_v3")  # the set-up's own last command
    assert first.returncode == 0, first.stderr
    # one person's label on one of rm_v3's pairs, as `datafactory label` would have made it
    import json

    import polars as pl

    pair = pl.read_parquet(next((root / "data" / "rm_v3").glob("*/tables/pairs.parquet"))).row(0, named=True)
    (tmp_path / "mine.jsonl").write_text(json.dumps({k: pair[k] for k in ("prompt", "response_a", "response_b")} | {
        "winner": "a", "annotator": "kim"}, ensure_ascii=False) + "\n", "utf-8")
    assert run(f"datafactory labels import {tmp_path / 'mine.jsonl'}").returncode == 0
    versions: list[str] = []
    commands = readme_commands()
    assert len(commands) >= 18
    for line in commands:
        if line.startswith("datafactory label "):  # a server: the label page tests drive it
            continue
        line = line.replace("~/corpora/NIKL_DIALOGUE_2021_v1.1.zip", str(download))
        line = line.replace("~/Downloads/NIKL_DIALOGUE_2021_v1.1.zip", str(download))
        line = line.replace("[--dry-run DIR]", f"--dry-run {tmp_path / 'upload'}")
        line = re.sub(r"\[([^\]]+)\]", r"\1", line)  # an optional part, given
        for placeholder, i in (("@3f2a9c", 0), ("@81b0d2", 1)):  # the versions the builds above made
            if placeholder in line:
                line = line.replace(placeholder, "@" + versions[i][:6])
        got = run(line)
        if "--llm openai --max-cost" in line:  # no key here: refused before anything runs, in one line
            assert got.returncode == 1 and "no API key in $OPENAI_API_KEY" in got.stderr, (line, got.stderr)
            continue
        assert got.returncode == 0, (line, got.stdout[-2000:], got.stderr[-2000:])
        assert "Traceback" not in got.stderr, line
        if line.startswith("datafactory build sft_v1"):
            version = got.stdout.strip().splitlines()[-1].split("@")[1]
            if version not in versions:
                versions.append(version)
        if line.startswith("datafactory trace"):
            assert "sft/daily/SDRW2000000001.1#4" in got.stdout and "call " in got.stdout
        if line.startswith("datafactory diff"):
            assert "->" in got.stdout and "sources.daily: its input files" in got.stdout
    assert len(versions) == 2  # the samples, then the download given with --source
    assert (tmp_path / "upload" / "README.md").exists() and (root / "answers.jsonl").exists()
