"""files: generic JSONL / JSON / Parquet / CSV records, with an optional column mapping.

Options::

    format: auto            # by extension: .jsonl/.json/.parquet/.csv (also inside zips)
    fields: {instruction: question, output: answer}   # target column: field in the file; keeps only these
    id: qid                 # a unique field to key records by; default "<file>#<record index>"
    json_key: data          # for JSON files that wrap the array in an object
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Literal

import polars as pl

from datafactory.sources.base import Bad, BadFile, NoOptions, Source
from datafactory.sources.inputs import InputFile


class FilesOptions(NoOptions):
    format: Literal["auto", "jsonl", "json", "parquet", "csv"] = "auto"
    fields: dict[str, str] | None = None
    id: str | None = None
    json_key: str | None = None


EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class FilesSource(Source):
    kind = "files"
    description = "Generic JSONL/JSON/Parquet/CSV records with a column mapping."
    Options = FilesOptions
    patterns = ["*.jsonl", "*.ndjson", "*.json", "*.parquet", "*.csv"]

    def _format(self, file: InputFile) -> str:
        if self.options.format != "auto":
            return self.options.format
        for ext, fmt in EXTENSIONS.items():
            if file.basename.lower().endswith(ext):
                return fmt
        raise BadFile("unknown_format", "cannot tell the format from the name; set `options.format`")

    def _records(self, file: InputFile) -> Iterator[tuple[int, object] | Bad]:
        fmt = self._format(file)
        if fmt == "jsonl":
            yield from self.jsonl_records(file)
        elif fmt == "json":
            data = self.load_json(file)
            if self.options.json_key is not None:
                if not isinstance(data, dict) or self.options.json_key not in data:
                    raise BadFile("missing_field", f"no top-level key '{self.options.json_key}'")
                data = data[self.options.json_key]
            if not isinstance(data, list):
                raise BadFile("wrong_type", f"expected a JSON array of records, got {type(data).__name__}; "
                              "set `options.json_key` if the array sits under a key")
            yield from enumerate(data)
        else:
            raw = file.read_bytes()
            try:
                if fmt == "parquet":
                    frame = pl.read_parquet(io.BytesIO(raw))
                else:
                    text = self.text(file)
                    frame = pl.read_csv(io.StringIO(text), infer_schema_length=0)  # all strings: no guessing
            except BadFile:
                raise
            except Exception as e:
                raise BadFile("malformed_file", f"cannot read as {fmt}: {str(e).splitlines()[0]}") from None
            yield from enumerate(frame.to_dicts())

    def parse(self, file: InputFile) -> Iterator[dict | Bad]:
        fields, id_field = self.options.fields, self.options.id
        for item in self._records(file):
            if isinstance(item, Bad):
                yield item
                continue
            i, rec = item
            if not isinstance(rec, dict):
                yield Bad(i, "wrong_type", f"record {i} is a {type(rec).__name__}, not an object", rec)
                continue
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
