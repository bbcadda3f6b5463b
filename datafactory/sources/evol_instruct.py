"""evol_instruct: Korean Evol-Instruct data (lcw99/evolve-instruct), in both layouts seen (docs/SOURCES.md section 4).

- ``evolve.py`` output: a JSON array of ``{"input": <evolved prompt>, "output": <answer>}`` (``gen_data/*.json``,
  ``evol_instruct.json``). Here ``input`` is the instruction.
- VAIV's re-keyed JSONL: ``{"id", "motivation_app", "instruction", "input": null, "output"}``.

Rows: ``instruction``, ``input`` (always ``""``: KULLM's template then takes its no-input form, as
``Prompter`` does for null), ``output``, ``original_id``. WizardLM seed rows (``{"idx", "Skill", "Instruction"}``,
no answer) are skipped and counted.
"""
from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from datafactory.sources.base import NOT_RECORDS, Bad, Skip, Source
from datafactory.sources.inputs import InputFile


class EvolInstructSource(Source):
    kind = "evol_instruct"
    description = "Korean Evol-Instruct: {input, output} JSON arrays or {id, instruction, input: null, output} JSONL."
    license = "lcw99/evolve-instruct states no licence; answers were generated with ChatGPT"
    patterns = ["*.json", "*.jsonl"]
    @property
    def schema(self) -> dict:  # a property: polars is not touched when the module is imported
        return {"instruction": pl.String, "input": pl.String, "output": pl.String, "original_id": pl.String}

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        for item in self.records(file):
            if isinstance(item, NOT_RECORDS):
                yield item
                continue
            i, rec = item
            if "Instruction" in rec and "output" not in rec:
                yield Skip("seed_without_answer")
                continue
            if "instruction" in rec:
                instruction, extra = rec.get("instruction"), rec.get("input")
            else:
                instruction, extra = rec.get("input"), None
            output = rec.get("output")
            if not isinstance(instruction, str) or not isinstance(output, str):
                field = "instruction/input" if not isinstance(instruction, str) else "output"
                yield Bad(i, "missing_field", f"record {i} has no string '{field}'", rec)
                continue
            if not output.strip():
                yield Bad(i, "empty_output", f"record {i} has an empty output", rec)
                continue
            original = rec.get("id")
            yield {"_key": f"{file.name}#{original if original is not None else i}",
                   "instruction": instruction.strip(), "input": (extra or "").strip() if isinstance(extra, str) else "",
                   "output": output.strip(), "original_id": None if original is None else str(original)}
