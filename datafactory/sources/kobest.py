"""kobest: KoBEST (skt/kobest_v1): COPA and HellaSwag for evaluation, and BoolQ, SentiNeg and WiC (Hub JSONL) for
decontamination (docs/SOURCES.md section 5).

Layouts: the Hub's per-config JSONL (``copa/train.jsonl``, ``hellaswag/validation.jsonl``) and the older TSVs
(``v1.0/COPA/{train,dev,test}.tsv`` with ``sentence, question, 1, 2, Answer``, Answer 1/2;
``v1.0/HellaSwag/*.tsv`` with ``context, choice1..choice4, label``, label 0-3). Labels come out 0-based as the
Hub's ClassLabel has them (COPA 0 = alternative_1). ``dev`` is named ``validation``.

Rows: ``task`` (copa/hellaswag/boolq/sentineg/wic), ``kobest_split``, COPA ``premise, question, alternative_1,
alternative_2``, HellaSwag ``context, ending_1..ending_4``, BoolQ ``paragraph, question``, SentiNeg ``sentence``, WiC
``word, context_1, context_2``, and ``label``.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import polars as pl

from datafactory.sources.base import NOT_RECORDS, Bad, BadFile, NoOptions, Skip, Source
from datafactory.sources.inputs import InputFile

TASK_FIELDS = {
    "copa": ["premise", "question", "alternative_1", "alternative_2"],
    "hellaswag": ["context", "ending_1", "ending_2", "ending_3", "ending_4"],
    "boolq": ["paragraph", "question"],
    "sentineg": ["sentence"],
    "wic": ["word", "context_1", "context_2"],
}
TSV_FIELDS = {
    "copa": {"premise": "sentence", "question": "question", "alternative_1": "1", "alternative_2": "2"},
    "hellaswag": {"context": "context", "ending_1": "choice1", "ending_2": "choice2", "ending_3": "choice3",
                  "ending_4": "choice4"},
}
N_LABELS = {"copa": 2, "hellaswag": 4, "boolq": 2, "sentineg": 2, "wic": 2}


class KobestOptions(NoOptions):
    task: Literal["auto", "copa", "hellaswag", "boolq", "sentineg", "wic"] = "auto"


class KobestSource(Source):
    kind = "kobest"
    description = "KoBEST COPA and HellaSwag, JSONL (Hub) or TSV (KoBEST_datarepo v1.0); BoolQ, SentiNeg, WiC (Hub JSONL)."
    license = "cc-by-sa-4.0"
    license_name = "cc-by-sa-4.0"
    license_link = "https://huggingface.co/datasets/skt/kobest_v1"
    redistribute = True
    Options = KobestOptions
    patterns = ["*.jsonl", "*.tsv"]
    @property
    def schema(self) -> dict:  # a property: polars is not touched when the module is imported
        return {"task": pl.String, "kobest_split": pl.String, "premise": pl.String, "question": pl.String,
                "alternative_1": pl.String, "alternative_2": pl.String, "context": pl.String, "ending_1": pl.String,
                "ending_2": pl.String, "ending_3": pl.String, "ending_4": pl.String, "paragraph": pl.String,
                "sentence": pl.String, "word": pl.String, "context_1": pl.String, "context_2": pl.String,
                "label": pl.Int32}

    def _task(self, file: InputFile, first: dict) -> str | None:
        if self.options.task != "auto":
            return self.options.task
        parts = file.name.lower().replace("\\", "/").replace("!", "/").split("/")
        for task in TASK_FIELDS:
            if task in parts[:-1]:
                return task
        if "paragraph" in first:
            return "boolq"
        if "context_1" in first:
            return "wic"
        if "premise" in first or ("sentence" in first and "question" in first):
            return "copa"
        if "sentence" in first:
            return "sentineg"
        if "context" in first:
            return "hellaswag"
        return None

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        stem = file.basename.rsplit(".", 1)[0]
        split = {"dev": "validation"}.get(stem, stem)
        tsv = file.basename.endswith(".tsv")
        records = list(self.records(file))  # VAIV's copy once held 0-byte TSVs: an empty_file error
        first = next((item[1] for item in records if not isinstance(item, NOT_RECORDS)), {})
        task = self._task(file, first)
        if task is None:
            raise BadFile("unknown_task", "cannot tell the KoBEST task by path or columns; set `options.task`")
        if tsv and task not in TSV_FIELDS:
            raise BadFile("unknown_task", f"KoBEST {task} is read from the Hub's JSONL ({task}/train.jsonl), not TSV")
        mapping = TSV_FIELDS[task] if tsv else {f: f for f in TASK_FIELDS[task]}
        label_field = "Answer" if tsv and task == "copa" else "label"
        for item in records:
            if isinstance(item, NOT_RECORDS):
                yield item
                continue
            i, rec = item
            row = {"_key": f"{file.name}#{i}", "task": task, "kobest_split": split}
            missing = [src for src in mapping.values() if not isinstance(rec.get(src), str) or not rec[src].strip()]
            if missing:
                yield Bad(i, "missing_field", f"record {i} has no '{missing[0]}'", rec)
                continue
            row.update({dst: rec[src].strip() for dst, src in mapping.items()})
            label = rec.get(label_field)
            try:
                label = int(str(label).strip()) if not (isinstance(label, str) and label.startswith(("alternative_", "ending_"))) \
                    else int(label.rsplit("_", 1)[1]) - 1
            except (TypeError, ValueError):
                yield Bad(i, "wrong_type", f"record {i} has label {label!r}, not a number", rec)
                continue
            if tsv and task == "copa":
                label -= 1  # the raw TSV answers 1/2
            if not 0 <= label < N_LABELS[task]:
                yield Bad(i, "label_out_of_range", f"record {i} has label {label} outside 0..{N_LABELS[task] - 1}", rec)
                continue
            row["label"] = label
            yield row
