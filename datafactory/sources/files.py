"""files: generic JSONL / JSON / Parquet / CSV / TSV records, with an optional column mapping.

Options::

    format: auto            # by extension: .jsonl/.json/.parquet/.csv/.tsv (also gzipped, also inside zips)
    fields: {instruction: question, output: answer}   # target column: field in the file; keeps only these
    id: qid                 # a unique field to key records by; default "<file>#<record index>"
    json_key: data          # for JSON files that wrap the array in an object
    messages: conversations # a field holding a conversation: OpenAI messages or ShareGPT turns

With ``messages``, a record's conversation becomes ``history`` (the turns before its last user turn, as ``{role,
content}``), ``instruction`` (that last user turn) and ``output`` (the assistant's answer after it, where the
conversation ends with one; else null). Both layouts are read: ``[{"role": "user", "content": ...}]`` (OpenAI, TRL)
and ``[{"from": "human", "value": ...}]`` (ShareGPT: human/gpt/system). A conversation with no user turn, an unknown
role or a turn without text is a bad record, named with what is wrong.
"""
from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Literal

from datafactory.sources.base import NOT_RECORDS, Bad, BadFile, Batch, NoOptions, Skip, Source, record_format
from datafactory.sources.inputs import InputFile

_KEY_END = re.compile(rb"\s*:\s*")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # an escaped half of a character past U+FFFF


def _lone_surrogate(data: bytes) -> bool:
    """Whether ``data`` escapes a surrogate without its other half (polars makes it "\\x00"; json.loads keeps it)."""
    open_at = None  # where a high surrogate's escape ended, waiting for its low half
    for m in _SURROGATE.finditer(data):
        if m.group()[3:4] in b"89abAB":
            if open_at is not None:
                return True
            open_at = m.end()
        elif open_at != m.start():
            return True
        else:
            open_at = None
    return open_at is not None


def _field_prefix(data: bytes, field: str) -> bytes | None:
    """``"field": `` as the file writes it (its spacing, from the name's first occurrence as a key), or None."""
    quoted = ('"' + field + '"').encode("utf-8")
    at = data.find(quoted)
    m = _KEY_END.match(data, at + len(quoted)) if at >= 0 else None
    return quoted + m.group() if m else None


class FilesOptions(NoOptions):
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "tsv"] = "auto"
    fields: dict[str, str] | None = None
    id: str | None = None
    json_key: str | None = None
    messages: str | None = None


ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "chatgpt": "assistant",
         "bing": "assistant", "bard": "assistant", "model": "assistant", "system": "system"}


def conversation(value, where: str) -> dict | str:
    """A record's message list as ``history``/``instruction``/``output``, or what is wrong with it."""
    if isinstance(value, str):  # a JSON string inside a CSV cell or a parquet string column
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return f"{where} is text, not a list of messages"
    if not isinstance(value, list) or not value:
        return f"{where} is not a non-empty list of messages"
    turns = []
    for j, m in enumerate(value):
        if not isinstance(m, dict):
            return f"{where}[{j}] is not an object"
        role, content = (m.get("role"), m.get("content")) if "role" in m else (m.get("from"), m.get("value"))
        if str(role).lower() not in ROLES:
            return f"{where}[{j}] has role {role!r}; known: user/assistant/system (or ShareGPT's human/gpt)"
        if not isinstance(content, str) or not content.strip():
            return f"{where}[{j}] has no text"
        turns.append({"role": ROLES[str(role).lower()], "content": content})
    output = turns.pop()["content"] if turns[-1]["role"] == "assistant" else None
    if not turns or turns[-1]["role"] != "user":
        return f"{where} has no user turn before its {'answer' if output is not None else 'end'}"
    return {"history": turns[:-1], "instruction": turns[-1]["content"], "output": output}


class FilesSource(Source):
    kind = "files"
    description = "Generic JSONL/JSON/Parquet/CSV/TSV records with a column mapping."
    Options = FilesOptions
    patterns = ["*.jsonl", "*.ndjson", "*.json", "*.parquet", "*.csv", "*.tsv", "*.jsonl.gz", "*.json.gz", "*.csv.gz",
                "*.tsv.gz"]

    def parse_batch(self, files: list[InputFile]) -> Batch | None:
        """The columnar fast path for JSON Lines (a Hub dataset's 300k-line JSONL: 2.30 s through ``parse``, 0.57 s
        here, benchmarks/bench_files.py): polars reads the file, and it is taken only where that gives exactly the
        rows ``parse`` gives (see ``_jsonl_frame``); any other file goes through ``parse``. Without a ``fields``
        mapping every field is taken, as ``parse`` takes them: the first line's, when every line has those and no
        other."""
        o = self.options
        if o.messages is not None or o.format not in ("auto", "jsonl") or self.encoding not in ("utf-8", "utf8", "auto"):
            return None
        import polars as pl

        frames, slow = [], []
        for i, file in enumerate(files):
            frame = self._jsonl_frame(file)
            if frame is None:
                slow.append(i)
            else:
                frames.append(frame.with_columns(pl.lit(i, pl.Int32).alias("_file")))
        frame = self._concat(frames) if frames else pl.DataFrame({"_key": [], "_file": []},
                                                                  schema={"_key": pl.String, "_file": pl.Int32})
        return Batch(frame, Counter(), slow)

    def _jsonl_frame(self, file: InputFile):
        """A JSON Lines file's rows, read by polars, where they are exactly ``parse``'s; else None (``parse`` then
        reads it, and judges what is odd). Taken: UTF-8, no blank line (keys are line numbers), no surrogate escape
        without its other half; each mapped field's name occurs once per line, as its key, always with a string
        value written the same way (a field missing, null, of another kind, written twice or under an escaped name
        is not taken); the ``id`` field the same, or an integer."""
        import polars as pl

        o = self.options
        if o.format != "jsonl" and record_format(file.basename) != "jsonl":
            return None
        try:
            data = self.data(file)
        except BadFile:
            return None
        data = data[3:] if data[:3] == b"\xef\xbb\xbf" else data
        end = len(data)
        while end and data[end - 1] in b" \t\r\n":  # (no copy of the file, as rstrip makes)
            end -= 1
        if not end or _lone_surrogate(data):
            return None
        rows = data.count(b"\n", 0, end) + 1  # records, where no line inside is blank (keys are line numbers)
        fields = o.fields
        if fields is None:  # every field, as parse takes them: the first line's, if no line has another
            try:
                first = json.loads(data[:data.find(b"\n") if rows > 1 else end])
            except (ValueError, RecursionError):  # parse names what is wrong with it
                return None
            if not isinstance(first, dict) or not first:
                return None
            fields = {k: k for k in first}
        prefixes = {f: _field_prefix(data, f) for f in dict.fromkeys([*fields.values(), *([o.id] if o.id else [])])}
        if o.fields is None and None not in prefixes.values():
            # no other field in any line: a key's end (`"name":`, the file's spacing) occurs once per field and line.
            # Inside a text value a quote is escaped, so more means another key (or `\":` in a text: left to parse),
            # fewer a key missing or spaced otherwise; each value text and once per line, checked below
            ends = {p[p.rindex(b'"'):] for p in prefixes.values()}
            if len(ends) != 1 or data.count(ends.pop(), 0, end) != len(prefixes) * rows:
                return None
        if None in prefixes.values():
            return None
        schema = {f: pl.String for f in prefixes}
        if o.id is not None:  # an id of text, or a whole number (its key: as str() writes it)
            at = data.find(prefixes[o.id]) + len(prefixes[o.id])
            if data[at:at + 1] != b'"':  # every value a whole number, or not taken
                if len(re.findall(re.escape(prefixes[o.id]) + rb"-?[0-9]+\s*[,}]", data)) != rows:
                    return None
                schema[o.id] = pl.Int64
        try:  # only the columns wanted: other fields may hold anything
            frame = pl.read_ndjson(io.BytesIO(data), schema=schema)
        except Exception:  # noqa: BLE001 - not JSON Lines polars takes: parse says what is wrong
            return None
        if frame.height != rows:
            return None
        # every record has the field at its top (else null) and, with a string, exactly once in all (a second key of
        # that name, or a value of another kind, which polars would make text, is one more or one less)
        for f, kind in schema.items():
            if frame[f].null_count() or (kind == pl.String and data.count(prefixes[f] + b'"') != rows):
                return None
        keys = (pl.lit(file.name + "#") + pl.int_range(pl.len()).cast(pl.String) if o.id is None
                else pl.col(o.id).cast(pl.String))
        return frame.select(*[pl.col(f).alias(t) for t, f in fields.items()], keys.alias("_key"))

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        fields, id_field, messages = self.options.fields, self.options.id, self.options.messages
        fmt = None if self.options.format == "auto" else self.options.format
        json_file = (fmt or record_format(file.basename)) in ("json", "jsonl")  # a parquet float may be NaN
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
            odd = json_file and next(((k, v) for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)),
                                     None)
            if odd:  # NaN or Infinity (a JSON array Python wrote): not JSON, and never the text "nan"
                yield Bad(i, "malformed_json", f"record {i}: field '{odd[0]}' is {odd[1]}, which is not JSON (Python's "
                          "and JavaScript's writers emit it); write null or a number", rec)
                continue
            if messages is not None:
                if messages not in rec:
                    yield Bad(i, "missing_field", f"record {i} has no field '{messages}'", rec)
                    continue
                turns = conversation(rec[messages], f"record {i}: '{messages}'")
                if isinstance(turns, str):
                    yield Bad(i, "bad_conversation", turns, rec)
                    continue
                row.pop(messages, None)
                row.update(turns)
            if id_field is not None:
                if rec.get(id_field) is None:
                    yield Bad(i, "missing_field", f"record {i} has no id field '{id_field}'", rec)
                    continue
                row["_key"] = str(rec[id_field])
            else:
                row["_key"] = f"{file.name}#{i}"
            yield row
