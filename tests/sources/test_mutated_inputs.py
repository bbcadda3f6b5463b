"""Every source kind on randomly mutated copies of its sample files: values of another kind, fields missing,
bytes cut off, flipped or re-encoded. A read either gives rows or fails with a DataFactoryError that names the file;
never a traceback from inside a parser or polars (a mutation fuzz of the samples found five such cases)."""
from __future__ import annotations

import json
import random

import pytest

from datafactory.errors import DataFactoryError
from tests.conftest import SAMPLES, read_source

ODD = [None, 0, 1.5, -3, True, "", " ", "x", [], [1], ["a"], {}, {"a": 1}, "\ufeff", "a\x00b", 10**30]


def mutate(value, rng):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            r = rng.random()
            if r < 0.04:
                continue
            out[k] = rng.choice(ODD) if r < 0.10 else mutate(v, rng)
        return out
    if isinstance(value, list):
        out = [mutate(v, rng) for v in value]
        if out and rng.random() < 0.05:
            out[rng.randrange(len(out))] = rng.choice(ODD)
        return out
    return value


def damage(data: bytes, rng) -> bytes:
    r = rng.random()
    if r < 0.3:
        return data[:rng.randrange(len(data))]
    if r < 0.6:
        data = bytearray(data)
        for _ in range(3):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if r < 0.8:
        return data.decode("utf-8").encode("cp949", errors="replace")
    return data


CASES = {  # kind, sample files, how they are written, options
    "nikl_dialogue": (sorted((SAMPLES / "nikl_dialogue" / "NIKL_DIALOGUE_2021_v1.0").rglob("*.json"))[:3], "json", {}),
    "aihub_ethics": (sorted((SAMPLES / "aihub_ethics").rglob("talksets-train-*.json"))[:2], "json", {}),
    "evol_instruct": ([SAMPLES / "evol_instruct" / "evol_rand_inst_sample.jsonl"], "jsonl", {}),
    "kobest": ([SAMPLES / "kobest" / "hub" / "copa" / "train.jsonl"], "jsonl", {"task": "copa"}),
    "files": ([SAMPLES / "evol_instruct" / "gen_data" / "evol_instruct.json"], "json", {}),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_mutated_and_damaged_files_give_rows_or_a_named_error(kind, tmp_path):
    files, how, options = CASES[kind]
    rng = random.Random(kind)
    for trial in range(8):
        folder = tmp_path / str(trial)
        folder.mkdir()
        for f in files:
            text = f.read_text("utf-8")
            records = [json.loads(x) for x in text.splitlines() if x.strip()] if how == "jsonl" else json.loads(text)
            records = mutate(records, rng)
            out = ("\n".join(json.dumps(r, ensure_ascii=False) for r in records) if how == "jsonl"
                   else json.dumps(records, ensure_ascii=False)).encode("utf-8")
            (folder / f.name).write_bytes(damage(out, rng) if trial % 2 else out)
        for on_error in ("quarantine", "fail"):
            try:
                read_source(kind, folder, on_error=on_error, **options)
            except DataFactoryError as e:
                assert any(f.name in str(e) for f in files) or "record key" in str(e) or "field '" in str(e), str(e)
