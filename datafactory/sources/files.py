"""files: generic JSONL / JSON / Parquet / CSV / TSV records, with an optional column mapping.

Options::

    format: auto            # by extension: .jsonl/.json/.parquet/.csv/.tsv (also gzipped, also inside zips)
    fields: {instruction: question, output: answer}   # target column: field in the file; keeps only these
    id: qid                 # a unique field to key records by; default "<file>#<record index>"
    json_key: data          # for JSON files that wrap the array in an object
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from datafactory.sources.base import NOT_RECORDS, Bad, NoOptions, Skip, Source
from datafactory.sources.inputs import InputFile


class FilesOptions(NoOptions):
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "tsv"] = "auto"
    fields: dict[str, str] | None = None
    id: str | None = None
    json_key: str | None = None


class FilesSource(Source):
    kind = "files"
    description = "Generic JSONL/JSON/Parquet/CSV/TSV records with a column mapping."
    Options = FilesOptions
    patterns = ["*.jsonl", "*.ndjson", "*.json", "*.parquet", "*.csv", "*.tsv", "*.jsonl.gz", "*.json.gz", "*.csv.gz",
                "*.tsv.gz"]

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        fields, id_field = self.options.fields, self.options.id
        fmt = None if self.options.format == "auto" else self.options.format
        for item in self.records(file, fmt, self.options.json_key):
            if isinstance(item, NOT_RECORDS):
                yield item
                continue
            i, rec = item
            if fields is not None:
                missing = [f for f in fields.values() if f not in rec]
                if missing:
                    yield Bad(i, "missing_field", f"record {i} has no field '{missing[0]}'", rec)
                    continue
                row = {target: rec[f] for target, f in fields.items()}
            else:
                row = dict(rec)
            if id_field is not None:
                if rec.get(id_field) is None:
                    yield Bad(i, "missing_field", f"record {i} has no id field '{id_field}'", rec)
                    continue
                row["_key"] = str(rec[id_field])
            else:
                row["_key"] = f"{file.name}#{i}"
            yield row
