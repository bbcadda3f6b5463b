"""The source base: turns a kind's parser into one polars frame with ``id`` and ``source`` columns.

A kind implements ``parse(file)`` and yields one dict per record (with a ``_key`` unique in the source),
``Skip(reason)`` for a record an option filters out, ``Bad(...)`` for a record it cannot use, or raises
``BadFile`` when the whole file is unusable. Everything around that lives here, once: input resolution, decoding (utf-8, cp949/euc-kr, auto), ``on_error: fail``
(one clear error naming the file and record) versus ``quarantine`` (skip, count by reason, keep the record).
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict

from datafactory.errors import SourceError
from datafactory.jsonl import lines
from datafactory.sources.inputs import InputFile, Listing, resolve_inputs, unsafe_member

BATCH_ROWS = 20_000
CHUNK_FILES = 1000  # files per unit of work (and per worker task) at most
CHUNK_BYTES = 16 << 20  # and bytes per unit at most (a file more when one alone is larger): a release of a few
                        # large files (AIHub's six talkset files) is parsed by every worker too
PARALLEL_BYTES = 64 << 20  # below this much input, worker processes cost more than they save
RECORD_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "tsv"}


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Bad:
    """A record the parser cannot use. ``index`` is its position in the file (0-based) or its id."""

    index: int | str
    reason: str
    detail: str
    raw: Any = None


@dataclass
class Skip:
    """A record left out on purpose (an option's filter, an empty utterance): counted by reason, not an error."""

    reason: str
    n: int = 1


NOT_RECORDS = (Bad, Skip)  # what ``Source.records`` gives besides records


class BadFile(Exception):
    """The whole file is unusable (truncated JSON, wrong encoding, empty)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class SourceRead:
    frame: pl.DataFrame
    files: int
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    cleaned: dict[str, int] = field(default_factory=dict)  # what the parser changed, by kind (``Source.note``)
    warnings: list[str] = field(default_factory=list)  # what a user should look at (unknown tokens, ...)
    digests: dict = field(default_factory=dict)  # path -> (size, mtime_ns, digest) of the bytes read (hash_reads)


class NotJSON(ValueError):
    pass


def _not_json(constant: str):
    raise NotJSON(f"{constant} is not JSON (Python's and JavaScript's writers emit it); write null or a number")


def _truncated(e: UnicodeDecodeError, size: int) -> bool:
    """The bytes end inside a multi-byte character: the file was cut off, whatever its encoding."""
    return e.end >= size and e.reason in ("unexpected end of data", "incomplete multibyte sequence")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # no UTF-8 or cp949 text starts so


def _utf16_without_bom(data: bytes) -> str | None:
    """'little-endian' or 'big-endian' where the bytes look like UTF-16 without a byte-order mark: zero bytes, a
    tenth of them or more, nearly all at odd (little-endian) or even positions; no UTF-8 or cp949 text has them."""
    sample = data[:65536]
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    if odd + even < len(sample) // 10:
        return None
    if odd > 9 * even:
        return "little-endian"
    if even > 9 * odd:
        return "big-endian"
    return None


def decode_text(data: bytes, encoding: str, name: str) -> str:
    """Decode with the source's encoding; 'auto' reads a file that starts with a UTF-16 byte-order mark (Excel's
    "Unicode Text") as UTF-16, else tries UTF-8 (with or without BOM), then cp949 (a superset of euc-kr). A file
    that ends inside a multi-byte character is reported as cut off, not as another encoding."""
    if encoding == "auto":
        candidates = ["utf-16"] if data.startswith(_UTF16_BOMS) else ["utf-8-sig", "cp949"]
    elif encoding == "utf-16" and not data.startswith(_UTF16_BOMS):  # UTF-16 decodes almost any bytes: mojibake
        raise BadFile("encoding", "no UTF-16 byte-order mark at the start: not a UTF-16 file (Excel and Windows write "
                      "one); set `encoding: auto`")
    else:
        candidates = [encoding]
    for enc in candidates:
        try:
            return data.decode("utf-8-sig" if enc in ("utf-8", "utf8") else enc)
        except UnicodeDecodeError as e:
            if _truncated(e, len(data)):
                raise BadFile("truncated", f"the file ends in the middle of a character (byte {e.start:,} of "
                              f"{len(data):,}): it was cut off; download or unpack it again") from None
            err = e
        except LookupError as e:
            raise SourceError(f"{name}: unknown encoding '{encoding}'; use utf-8, cp949, euc-kr, utf-16 or auto") from e
    order = None if data.startswith(_UTF16_BOMS) else _utf16_without_bom(data)
    if order is not None:
        tried = "UTF-8 or cp949" if encoding == "auto" else encoding
        raise BadFile("encoding", f"not valid {tried}: it looks like UTF-16 ({order}) without the byte-order mark "
                      "that says so (every other byte is 0, as in a UTF-16 file of mostly ASCII); save it as UTF-8, or "
                      "as UTF-16 with a BOM (Excel's \"Unicode Text\") and set `encoding: auto`")
    if data.startswith(_UTF16_BOMS) and encoding not in ("utf-16", "auto"):
        other = "utf-16"  # (Excel's "Unicode Text")
    else:
        other = {"auto": None, "utf-8": "cp949"}.get(encoding, "utf-8")
    hint = f"set `encoding: {other}` (or `auto`) on this source" if other else "the file is neither UTF-8 nor cp949"
    raise BadFile("encoding", f"not valid {encoding} at byte {err.start}; {hint}")


@dataclass
class Batch:
    """What ``Source.parse_batch`` returns: rows (with ``_key`` and ``_file``), skips, and the files it left."""

    frame: pl.DataFrame
    skipped: Counter
    slow: list[int]


@dataclass
class _Chunk:
    frames: list[pl.DataFrame]
    quarantined: Counter
    quarantine: list[dict]
    skipped: Counter
    cleaned: Counter
    warned: set
    digests: dict
    parts: list[str]
    spilled: list[str] = field(default_factory=list)  # a worker's rows in an Arrow file, for a kind without a schema

    @classmethod
    def empty(cls) -> "_Chunk":
        return cls([], Counter(), [], Counter(), Counter(), set(), {}, [])

    def add(self, other: "_Chunk") -> None:
        self.digests.update(other.digests)
        self.frames += other.frames
        for path in other.spilled:  # read whole (no file left mapped), then gone
            with open(path, "rb") as f:
                self.frames.append(pl.read_ipc(io.BytesIO(f.read())))
            os.remove(path)
        self.parts += other.parts
        self.quarantined.update(other.quarantined)
        self.quarantine += other.quarantine
        self.skipped.update(other.skipped)
        self.cleaned.update(other.cleaned)
        self.warned |= other.warned


def _read_chunk(source: "Source", files: list[InputFile], parts=None, index: int = 0, spill: str | None = None) -> _Chunk:
    return source._read_chunk(files, parts, index, spill)


def _sizes(files: list[InputFile]) -> list[int]:
    """Each file's size: a folder listing's column (no InputFile made for 100k files: 0.11 s), or the files'."""
    return files.sizes if isinstance(files, Listing) else [f.size for f in files]


def _chunks(files: list[InputFile]) -> list[list[InputFile]]:
    """The files in order, cut into units of at most CHUNK_FILES files and, past one file, CHUNK_BYTES bytes."""
    sizes = _sizes(files)
    chunks, start, size = [], 0, 0
    for i, n in enumerate(sizes):
        if i > start and (i - start >= CHUNK_FILES or size + n > CHUNK_BYTES):
            chunks.append(files[start:i])
            start, size = i, 0
        size += n
    if start < len(sizes):
        chunks.append(files[start:])
    return chunks


def _cores() -> int:
    """The cores this process may use (macOS and Windows have no sched_getaffinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pool(workers: int):
    """The worker processes of a source. Forkserver, not fork: the parent runs polars' thread pool, which a forked
    child may find locked; spawn where there is no forkserver (Windows). Workers import the main module again, as
    every multiprocessing user's do (a script must guard its top level with `if __name__ == "__main__":`).

    Each worker's polars gets its share of the cores (a pool of a thread per core in every worker oversubscribes
    them), unless the user set ``POLARS_MAX_THREADS``. polars reads it when it is imported, so the initializer is
    ``os.putenv`` itself: a function of this module would import polars in the worker as it is unpickled, before it
    runs (as ``_start_worker`` did, so its setting never took)."""
    import concurrent.futures
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    threads = os.environ.get("POLARS_MAX_THREADS") or str(max(1, _cores() // workers))
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                                  initializer=os.putenv, initargs=("POLARS_MAX_THREADS", threads))


def _stop(ex) -> None:
    """End a pool of workers now: the chunks queued are dropped and the workers ended, mid-chunk, and waited for,
    so that none writes a part after the caller removed the folder. Leaving the pool's ``with`` waited for every
    chunk queued (a Ctrl-C or an error in the first chunk of 100k files stopped after the whole parse), and
    cancelling futures (as ``map`` does when interrupted) races the pool's own thread on Python 3.11, which then
    dies on InvalidStateError and leaves the program hanging at exit. (``terminate_workers`` from Python 3.14.)"""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(10)


def _main_importable() -> bool:
    """Whether worker processes can import the main module again (not a script read from stdin: `python - < x`)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return main is None or os.path.exists(main)


def _workers(files: list[InputFile] | None = None) -> int:
    """Worker processes for a source: ``DATAFACTORY_WORKERS`` if set, else one per core for a large input (for
    ``files=None``, as many as a large input gets)."""
    env = os.environ.get("DATAFACTORY_WORKERS")
    if env is not None:
        try:
            return max(1, int(env))
        except ValueError:
            raise SourceError(f"DATAFACTORY_WORKERS={env!r} is not a number of processes; set it to 1 or more") from None
    if not _main_importable():
        return 1
    return min(_cores(), 8) if files is None or sum(_sizes(files)) >= PARALLEL_BYTES else 1


def start_forkserver() -> None:
    """Start now the process that worker processes are forked from (it imports the main module first, as
    multiprocessing's forkserver does), while the main process plans on one core: the first workers of a large
    source then start 0.15-0.2 s sooner (10k NIKL files: cold build 2.08 -> 1.94 s, medians of 7). A build that
    parses nothing leaves it idle; it ends with the build's process. Nothing is started where workers would not be
    (one core, ``DATAFACTORY_WORKERS=1``, a main script workers cannot import, no forkserver on the system). The
    CLI calls it; a library call does not (a user's unguarded script would run again in the forkserver)."""
    import multiprocessing
    from multiprocessing import forkserver

    try:
        wanted = _workers()
    except SourceError:
        return  # said again when a source is to be parsed
    if wanted < 2 or not _main_importable() or "forkserver" not in multiprocessing.get_all_start_methods():
        return
    try:
        forkserver.ensure_running()
    except Exception:  # noqa: BLE001 - only a head start: the pool starts it again, and says what fails
        pass


def record_format(basename: str) -> str | None:
    """A records file's format from its name (``.gz`` aside), or None."""
    name = basename.lower().removesuffix(".gz")
    return next((f for ext, f in RECORD_FORMATS.items() if name.endswith(ext)), None)


def _read_table(text: str, fmt: str) -> pl.DataFrame:
    """A CSV or TSV file's rows, every column as text. A TSV file is read as Excel writes one (a field with a tab, a
    newline or a quote in quotes, its quotes doubled) unless that reading fails, or takes several of the file's lines
    as one row while every line holds a whole row: then as the format itself has it (no quoting: every line a row,
    every value as written), which is how Korean corpora in TSV are made. NSMC's `"반지의 제왕"보다 재밌다` starts
    with a quote that closes mid-field (the quoted reading failed), and a review that starts with a quote it never
    closes made the rows after it part of its text, up to the next quote, without a word."""
    def read(quote_char: str | None = '"') -> pl.DataFrame:
        return pl.read_csv(io.StringIO(text), separator="\t" if fmt == "tsv" else ",", infer_schema_length=0,
                           quote_char=quote_char)

    try:
        frame = read()
    except Exception:
        if fmt != "tsv":
            raise
        try:
            return read(None)
        except Exception:
            pass
        raise
    if fmt == "tsv" and '"' in text:
        rows = [line for line in lines(text) if line.strip()]
        width = rows[0].count("\t") if rows else 0
        if len(rows) - 1 > frame.height and all(line.count("\t") == width for line in rows):
            return read(None)
    return frame


def _ragged_row(text: str, separator: str) -> str | None:
    """The first row with more fields than the header, in words (a stray separator, a quote left open)."""
    import csv

    rows = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    header = next(rows, [])
    for row in rows:
        if len(row) > len(header):
            return (f"line {rows.line_num} has {len(row)} fields, the header {len(header)} (a separator too many, or "
                    "a quote not closed?)")
    return None


def _json_lines(error) -> bool:
    """Whether a JSON document failed because a second value starts on a new line: JSON Lines, not a broken file."""
    if not isinstance(error, json.JSONDecodeError) or error.msg != "Extra data":
        return False
    return error.doc[:error.pos].rstrip(" \t\r").endswith("\n")


UNREADABLE = "unreadable"  # the digest of an input that could not be read: its parse says why (or quarantines it)


def input_digest(cache, path, size: int | None = None, mtime: int | None = None) -> str:
    """An input's digest from the fingerprint cache, or ``UNREADABLE`` (not remembered: read again next time)."""
    try:
        return cache.digest(path, size, mtime)
    except OSError:
        return UNREADABLE


class MixedKinds(SourceError):
    """A field of a source without a schema holds values of two kinds one column cannot hold."""


def _kind(value) -> str:
    """What a value is, in a user's words (for errors about a field's values)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "text" if isinstance(value, str) else f"the {type(value).__name__} {value!r:.40}"


def _kinds(kind: type) -> str:
    """Values of a Python type, in a user's words (plural)."""
    return {dict: "objects", list: "lists", str: "text", bool: "true/false", int: "whole numbers",
            float: "numbers"}.get(kind, f"{kind.__name__} values")


def _to_frame(rows: list[dict], schema: dict | None = None) -> pl.DataFrame:
    """Rows as a frame: in ``schema``'s columns and types (a value that does not convert is null), or, without
    one, in the types polars infers from every row."""
    if schema is not None:
        return pl.DataFrame(rows, schema=schema, strict=False)
    return pl.DataFrame(rows, infer_schema_length=None)


def _frame_errors() -> tuple:
    """What polars raises for values one column cannot hold (or a type that cannot hold a value). A function, not a
    constant: the CLI loads polars on first use, and ``pl.exceptions`` at import would load it in every no-op build."""
    return TypeError, ValueError, OverflowError, pl.exceptions.PolarsError


def _builds(rows: list[dict], schema: dict | None = None) -> bool:
    """Whether ``_to_frame`` takes these rows."""
    try:
        _to_frame(rows, schema)
        return True
    except _frame_errors():
        return False


def _mixed_field(rows: list[dict]) -> str:
    """Which field of ``rows`` polars cannot hold in one column, and two records whose values disagree, if two do."""
    for name in dict.fromkeys(k for r in rows for k in r):
        values = [r.get(name) for r in rows]
        if _builds([{"v": v} for v in values]):
            continue
        given = [i for i, v in enumerate(values) if v is not None]
        for j in given[1:]:
            if not _builds([{"v": values[given[0]]}, {"v": values[j]}]):
                first, other = rows[given[0]], rows[j]
                return (f"field '{name}' holds {_kind(first[name])} in record {first.get('_key')} and "
                        f"{_kind(other[name])} in record {other.get('_key')}")
        return f"field '{name}' holds values of different kinds"
    return "the records' fields hold values of different kinds"


def kinds_clash(a, b) -> bool:
    """Whether two columns' polars types go together only by making one's values text ("{1}"), or not at all: a
    list or an object beside another kind. (Two objects merge their fields; a number beside text becomes text, as
    polars makes it within one file.)"""
    return len({type(d) if d.is_nested() else None for d in (a, b) if d != pl.Null}) > 1


def dtype_kind(dtype) -> str:
    """A column type in a user's words."""
    if isinstance(dtype, pl.Struct):
        return "objects"
    if dtype.is_nested():
        return "lists"
    return "text" if dtype == pl.String else "true/false" if dtype == pl.Boolean else \
        "numbers" if dtype.is_numeric() else str(dtype)


def first_kinds_clash(frames: dict) -> tuple[str, object, object] | None:
    """The first column of these frames (by label) that holds lists or objects in one and another kind in a later
    one (``kinds_clash``), with the labels of the two frames; else None. What concatenating them would make text or
    fail on: a source's files, a recipe's sources, a step's rows beside the others'."""
    seen: dict[str, tuple] = {}
    for label, frame in frames.items():
        for name, dtype in frame.schema.items():
            if dtype == pl.Null:  # a column of nulls only: no kind yet, not the one the others are held to
                continue
            first = seen.setdefault(name, (label, dtype))
            if kinds_clash(first[1], dtype):
                return name, first[0], label
    return None


def _nested_beside_other(frames: list[pl.DataFrame]) -> str | None:
    """Frames of a source without a schema (a file's rows each), before they are put together: a field that holds
    objects or lists in one and another kind in the next would become text there ("{1}"), silently. Where that is,
    as ``_mixed_field`` says it; else None."""
    clash = first_kinds_clash(dict(enumerate(frames)))
    if clash is None:
        return None
    name, i, j = clash
    a, b = (frames[k].filter(pl.col(name).is_not_null()).row(0, named=True) for k in (i, j))
    return f"field '{name}' holds {_kind(a[name])} in record {a.get('_key')} and {_kind(b[name])} in record {b.get('_key')}"


class Source:
    """One kind of input. Subclasses set ``kind``, ``patterns``, ``schema`` and implement ``parse``."""

    kind: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    patterns: ClassVar[list[str]] = ["*"]
    schema: ClassVar[dict[str, Any] | None] = None  # None: infer (generic files)
    license: ClassVar[str] = ""  # the corpus terms, for the dataset card
    license_name: ClassVar[str] = ""  # a short id of those terms (the card's ``license_name``)
    license_link: ClassVar[str] = ""  # where the terms are
    redistribute: ClassVar[bool | None] = None  # may its text be published? False: `push` needs --private
    content_warning: ClassVar[str] = ""  # shown on the card of every dataset built from it
    skip_hints: ClassVar[dict[str, str]] = {}  # skip reason -> what to change, for the "no rows" error
    version: ClassVar[int] = 1

    def __init__(self, name: str, path: str | None, options: BaseModel, *, encoding: str = "utf-8",
                 on_error: str = "fail", base_dir: Path | None = None):
        self.name, self.path, self.options = name, path, options
        self.encoding, self.on_error, self.base_dir = encoding, on_error, base_dir
        self._inputs: list[InputFile] | None = None
        self._cleaned: Counter[str] = Counter()
        self._warned: set[str] = set()
        self.hash_reads = False  # record the digest of every file's bytes as they are read (SourceRead.digests)
        self._read_digests: dict | None = None

    # -- what a kind implements -------------------------------------------------------------------
    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        raise NotImplementedError

    def identity(self) -> dict:
        """Anything besides options and input bytes that changes this source's rows."""
        return {}

    # -- helpers for kinds ------------------------------------------------------------------------
    def note(self, kind: str, n: int = 1, *, warn: bool = False) -> None:
        """Count something the parser changed (``cleaned`` in the manifest); ``warn`` also makes it a warning."""
        if n:
            self._cleaned[kind] += n
            if warn:
                self._warned.add(kind)

    def data(self, file: InputFile) -> bytes:
        """The file's bytes; a ``.gz`` file (Anthropic's ``train.jsonl.gz``) is decompressed. A file that cannot be
        read (gone since it was listed, no permission, a damaged zip member) is a ``BadFile``: named, or quarantined."""
        if file.member is not None and unsafe_member(file.member):
            raise BadFile("unsafe_path", "a zip member whose name leads outside the archive (`..` or an absolute path: "
                          "a zip made to overwrite files); not read. Check where the zip came from")
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raise BadFile("unreadable", "listed, then gone: was it moved or deleted while the build ran? Build again "
                          "once the folder is complete") from None
        except OSError as e:
            raise BadFile("unreadable", f"cannot be read ({e.strerror or e}); check the file and its permissions") from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise BadFile("truncated", f"a damaged member of its zip ({e}); download the zip again") from None
        except KeyError:  # a member listed, then not in the zip: it was replaced meanwhile
            raise BadFile("unreadable", "no longer in its zip: was the zip replaced while the build ran? Build "
                          "again") from None
        if self._read_digests is not None and file.member is None:  # planning needs not read this file again
            import xxhash

            self._read_digests[str(file.path)] = (file.size, file.mtime_ns, xxhash.xxh3_128_hexdigest(raw))
        if not file.basename.lower().endswith(".gz"):
            return raw
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise BadFile("truncated", f"not a complete gzip file ({e}); download it again") from None

    def text(self, file: InputFile) -> str:
        """The file decoded with the source's encoding; an empty (or blank) file is a ``BadFile``."""
        text = decode_text(self.data(file), self.encoding, file.name)
        if not text.strip():
            raise BadFile("empty_file", "the file is empty; download it again")
        return text

    def load_json(self, file: InputFile) -> Any:
        text = self.text(file)
        try:  # NaN and Infinity, as Python's json writes them, are read as floats: a record holding one where text
            # belongs is rejected by its source (a whole file is not lost for one)
            return json.loads(text)
        except RecursionError:
            raise BadFile("malformed_json", "nested too deeply to read (thousands of levels of [ or {): no record of a "
                          "corpus is; the file is damaged or not what it seems") from None
        except json.JSONDecodeError as e:
            if _json_lines(e):
                fix = ("set `options.format: jsonl`" if "format" in type(self.options).model_fields else
                       f"a {self.kind} file is one JSON document")
                raise BadFile("malformed_json", f"a second JSON value starts on line {e.lineno}: the file is JSON Lines "
                              f"(one record per line), not one JSON document; {fix}") from e
            raise BadFile("malformed_json", f"invalid JSON at line {e.lineno} column {e.colno} ({e.msg}); "
                          "the file may be truncated: download or unpack it again") from e

    def jsonl_records(self, file: InputFile) -> Iterator[tuple[int, Any] | Bad]:
        """(line index, parsed object) for each non-blank line; a bad line is a ``Bad``, not the end of the file: one
        that is not JSON (``NaN``, ``Infinity``: a Python or JavaScript writer's, not JSON's), and one whose bytes are
        not the source's encoding (the other lines of the file are read; the bad one is kept as its bytes show)."""
        try:
            text_lines: Iterator = enumerate(lines(self.text(file)))
        except BadFile as e:
            if e.reason != "encoding" or self.encoding not in ("utf-8", "utf8", "auto", "cp949", "euc-kr"):
                raise
            one_by_one = list(self._lines_decoded_one_by_one(file))
            bad = sum(isinstance(line, Bad) for _, line in one_by_one)
            if bad * 2 > len([1 for _, line in one_by_one if isinstance(line, Bad) or line.strip()]):
                raise  # most lines: the whole file is in another encoding, as the file's error says
            text_lines = iter(one_by_one)
        for i, line in text_lines:
            if isinstance(line, Bad):
                yield line
                continue
            if not line.strip():
                continue
            try:
                yield i, json.loads(line, parse_constant=_not_json)
            except NotJSON as e:
                yield Bad(i, "malformed_json", f"line {i + 1}: {e}", line[:500])
            except RecursionError:
                yield Bad(i, "malformed_json", f"line {i + 1}: nested too deeply to read (thousands of levels)",
                          line[:500])
            except json.JSONDecodeError as e:
                yield Bad(i, "malformed_json", f"line {i + 1}: invalid JSON ({e.msg})", line[:500])

    def _lines_decoded_one_by_one(self, file: InputFile) -> Iterator[tuple[int, str | Bad]]:
        """A JSON Lines file whose bytes are not all the source's encoding, a line at a time: each line that is, as
        text; each that is not, a ``Bad`` holding its bytes (invalid ones shown as \\xNN)."""
        encoding = {"auto": "utf-8", "utf8": "utf-8"}.get(self.encoding, self.encoding)
        for i, raw in enumerate(self.data(file).removeprefix(b"\xef\xbb\xbf").split(b"\n")):
            raw = raw.removesuffix(b"\r")
            try:
                yield i, raw.decode(encoding)
            except UnicodeDecodeError as e:
                yield i, Bad(i, "encoding", f"line {i + 1}: not valid {encoding} at byte {e.start} of the line (set "
                             "`encoding:` if the whole file is another)", raw.decode(encoding, "backslashreplace")[:2000])

    def records(self, file: InputFile, fmt: str | None = None,
                json_key: str | None = None) -> Iterator[tuple[int, dict] | Bad | Skip]:
        """(index, object) for each record of a JSONL, JSON-array, Parquet, CSV or TSV file (format from the
        extension unless given). A bad line or a non-object record comes out as a ``Bad``, a CSV/TSV row of empty
        cells as a ``Skip`` (callers pass both on: ``NOT_RECORDS``); an unreadable file raises ``BadFile``."""
        by_name = fmt is None
        fmt = fmt or record_format(file.basename)
        if fmt is None:
            raise BadFile("unknown_format", "cannot tell the format from the name; set `options.format`")
        if fmt == "jsonl":
            items: Iterator = self.jsonl_records(file)
        elif fmt == "json":
            try:
                data = self.load_json(file)
            except BadFile as e:  # JSON Lines in a file named .json, as many datasets on the Hub ship them
                if not (by_name and json_key is None and _json_lines(e.__cause__)):
                    raise
                fmt, items = "jsonl", self.jsonl_records(file)
            if fmt == "json":
                if json_key is not None:
                    if not isinstance(data, dict) or json_key not in data:
                        raise BadFile("missing_field", f"no top-level key '{json_key}'")
                    data = data[json_key]
                if not isinstance(data, list):
                    raise BadFile("wrong_type", f"expected a JSON array of records, got {type(data).__name__}"
                                  + ("" if json_key else "; set `options.json_key` if the array sits under a key"))
                items = enumerate(data)
        else:
            try:
                if fmt == "parquet":
                    frame = pl.read_parquet(io.BytesIO(self.data(file)))
                else:  # every column as text: no type guessing on user files
                    frame = _read_table(self.text(file), fmt)
            except BadFile:
                raise
            except Exception as e:
                why = str(e).splitlines()[0]
                if fmt in ("csv", "tsv") and "more fields" in why:  # polars names no line: find it
                    why = _ragged_row(self.text(file), "\t" if fmt == "tsv" else ",") or why
                raise BadFile("malformed_file", f"cannot read as {fmt}: {why}") from None
            items = enumerate(frame.to_dicts())
            if fmt in ("csv", "tsv"):  # a blank line or a row of empty cells (Excel keeps formatted ones) is no record
                items = (Skip("empty_row") if all(v is None or not v.strip() for v in item[1].values()) else item
                         for item in items)
        for item in items:
            if isinstance(item, Skip):
                yield item
                continue
            if not isinstance(item, Bad) and not isinstance(item[1], dict):
                item = Bad(item[0], "wrong_type", f"record {item[0]} is a {type(item[1]).__name__}, not an object", item[1])
            yield item

    # -- what the engine calls ----------------------------------------------------------------------
    def inputs(self) -> list[InputFile]:
        if self._inputs is None:
            if not self.path:
                raise SourceError(f"source '{self.name}' ({self.kind}) has no path; set `path:` or pass --source {self.name}=PATH")
            self._inputs = resolve_inputs(self.path, self.patterns, self.base_dir)
            if not self._inputs:
                raise SourceError(f"{self.path}: no file matching {self.patterns} for source '{self.name}' ({self.kind}); "
                                  "check the path (--source NAME=PATH)")
        return self._inputs

    def fingerprint(self, cache, defer: bool = False) -> dict | None:
        """One digest over every input (its name and content digest) and the file count; the per-file list is
        ``input_list`` (the version's ``inputs/<source>.tsv``). A listing whose every (path, size, mtime) is as
        last time gives the digest remembered for it (a no-op build of 100k files reads no digest at all); else a
        file unchanged in size and mtime is not re-read (``cache``: fingerprints.FingerprintCache), and an archive is
        hashed once for all its members. With ``defer``, new or changed plain files are not hashed here: it
        returns ``None`` and the build parses them with ``hash_reads`` on (each byte read once)."""
        import array

        import xxhash

        files = self.inputs()
        self._fp_cache = cache
        self._input_list = None

        if isinstance(files, Listing):  # a folder's files as columns: no InputFile made unless something changed
            paths, sizes, mtimes = files.paths, files.sizes, files.mtimes
        else:
            paths = [str(f.path) if f.member is None else f"{f.path}!{f.member}" for f in files]
            sizes, mtimes = [f.size for f in files], [f.mtime_ns for f in files]
        # the names the fingerprint hashes are relative to where the source points: the same files under another
        # root are other names (and other row keys), so the root is part of the listing's key
        h = xxhash.xxh3_128(f"{self.path}\0{self.base_dir}\0".encode("utf-8", "surrogateescape"))
        h.update("\n".join(paths).encode("utf-8", "surrogateescape"))
        h.update(array.array("q", sizes).tobytes())
        h.update(array.array("q", mtimes).tobytes())
        listing = h.hexdigest()
        known = cache.listing(listing)
        if known is not None:
            return known
        if defer and (isinstance(files, Listing) or all(f.member is None for f in files)):
            entries = cache.entries()
            # by the columns above (the same paths, for plain files): a listing's InputFiles are not made
            if any((e := entries.get(p)) is None or e[0] != n or e[1] != t for p, n, t in zip(paths, sizes, mtimes)):
                return None  # new or changed files: the build hashes them as it parses them (hash_reads)
        fp = {"digest": xxhash.xxh3_128("".join(f"{name}\t{d}\n" for name, _, d in self.input_list)
                                        .encode("utf-8")).hexdigest(), "files": len(files)}
        cache.remember_listing(listing, fp)
        return fp

    @property
    def input_list(self) -> list[tuple[str, int, str]]:
        """(name, bytes, digest) of every input, sorted by name (after ``fingerprint``)."""
        if getattr(self, "_input_list", None) is None:
            cache = self._fp_cache
            files = self.inputs()
            known = cache.entries()

            def plain(path, size: int, mtime: int) -> str:  # a file unchanged in size and mtime is not opened again
                e = known.get(path)
                return e[2] if e is not None and e[0] == size and e[1] == mtime else input_digest(cache, path, size, mtime)

            if isinstance(files, Listing):  # a folder's plain files, by its columns (no InputFile made)
                digests = list(map(plain, files.paths, files.sizes, files.mtimes))
                self._input_list = sorted(zip(files.names, files.sizes, digests))
                return self._input_list
            disk: dict = {}
            listing = []
            for f in files:
                d = disk.get(f.path)
                if d is None:
                    if f.member is None:  # the usual case
                        d = plain(f.path, f.size, f.mtime_ns)
                    else:
                        d = input_digest(cache, f.path)
                    disk[f.path] = d
                listing.append((f.name, f.size, d))
            listing.sort()
            self._input_list = listing
        return self._input_list

    def parse_batch(self, files: list[InputFile]) -> "Batch | None":
        """An optional columnar fast path over many files at once (``nikl_dialogue`` has one). Returns the rows
        of the files it could parse as a frame with a ``_file`` column (the file's index in ``files``), and the
        indices of the files it left to ``parse``: a file the fast path cannot take exactly as ``parse`` would
        (a missing field, another encoding, malformed JSON) goes the per-record way, with its precise errors."""
        return None

    def decode_fast(self, file: InputFile, decoder) -> Any:
        """The file decoded by a typed msgspec ``decoder`` for a fast path, or None where ``parse`` must take it:
        another encoding than UTF-8, bytes that are not valid JSON of the decoder's types, an unreadable file (each
        reported exactly by ``parse``). A UTF-8 BOM is skipped, as ``text`` does."""
        import msgspec

        if self.encoding not in ("utf-8", "utf8", "auto"):
            return None
        try:
            data = self.data(file)
            return decoder.decode(data[3:] if data[:3] == b"\xef\xbb\xbf" else data)
        except (msgspec.DecodeError, BadFile):
            return None

    def read(self, on_file=None, parts=None) -> SourceRead:
        """Parse every input file, in chunks of files; a large source is parsed by worker processes (one per
        core, ``DATAFACTORY_WORKERS`` to set). Rows keep the order of the files and of the records in them.
        ``on_file(n)`` is called as files are done, for progress bars. With ``parts`` (a ``store.Parts``) a kind
        with a fixed schema has each chunk's rows (with ``id`` and ``source``, every column) written there by the
        process that parsed it, and the frame returned holds the parts' ``columns`` (the engine's source cache
        entry, and the columns the recipe reads): the whole table with every column is never in memory."""
        files = self.inputs()
        chunks = _chunks(files)
        workers = _workers(files) if len(chunks) > 1 else 1
        result = _Chunk.empty()
        if self.schema is None:
            parts = None

        def add(part: _Chunk, chunk: list[InputFile]) -> None:
            result.add(part)
            if on_file is not None:
                on_file(len(chunk))

        pool_failed = None
        if workers > 1:
            import concurrent.futures
            import shutil
            import tempfile

            done, ex = 0, None
            # a kind without a schema has no parts: its workers hand their rows over as Arrow files, not through
            # the pipe (pickled and unpickled, 600k rows of JSON Lines took longer than parsing them)
            spill = tempfile.mkdtemp(prefix="datafactory-rows-") if parts is None else None
            try:  # where workers cannot start, one process does the work
                ex = _pool(workers)
                futures = [ex.submit(_read_chunk, self, chunk, parts, i, spill) for i, chunk in enumerate(chunks)]
                for chunk, future in zip(chunks, futures):
                    add(future.result(), chunk)
                    done += 1
                ex.shutdown()
            except BaseException as e:  # a bad file, Ctrl-C, SIGTERM: the workers stop now, not after every chunk
                if ex is not None:
                    _stop(ex)
                if not isinstance(e, concurrent.futures.process.BrokenProcessPool):
                    raise
                pool_failed = f"worker processes failed ({e}); parsed in one process instead"
                for i in range(done, len(chunks)):
                    add(self._read_chunk(chunks[i], parts, i), chunks[i])
            finally:
                if spill is not None:
                    shutil.rmtree(spill, ignore_errors=True)
        else:
            for i, chunk in enumerate(chunks):
                add(self._read_chunk(chunk, parts, i), chunk)
        if parts is not None:
            if not result.parts:  # nothing came: an empty part, for the schema
                result.parts.append(parts.write(self._lineage(self._frame([])), 0))
            frame = parts.read(result.parts)
            self._check_unique(frame["id"], len(self.name) + 1)  # "name/key": the keys' prefix is the same
        else:
            frame = self._concat(result.frames) if result.frames else self._frame([])
            self._check_unique(frame["_key"].cast(pl.String))
            frame = self._lineage(frame)
        warnings = [f"{kind}: {result.cleaned[kind]:,}" for kind in sorted(result.warned)]
        if pool_failed:
            warnings.append(pool_failed)
        return SourceRead(frame, len(files), dict(result.quarantined), result.quarantine,
                          dict(result.skipped), dict(result.cleaned), warnings, result.digests)

    def _read_chunk(self, files: list[InputFile], parts=None, index: int = 0, spill: str | None = None) -> "_Chunk":
        """Rows of some files, in file order: the fast path's where it has one, ``parse`` for the rest; with
        ``parts``, written there as part ``index`` (with their lineage columns) rather than returned."""
        out = _Chunk.empty()
        self._cleaned.clear()
        self._warned.clear()
        self._read_digests = out.digests if self.hash_reads else None
        fast = self.parse_batch(files)
        slow = set(range(len(files))) if fast is None else set(fast.slow)
        if fast is not None:
            out.skipped.update(fast.skipped)
        rows: list[dict] = []
        pieces: list[pl.DataFrame] = [] if fast is None or fast.frame.is_empty() else [fast.frame]

        def reject(file: InputFile, index, reason: str, detail: str, raw=None):
            if self.on_error == "fail":
                where = f"{file.name}" + (f", record {index}" if index is not None else "")
                raise SourceError(f"{where}: {detail} [source '{self.name}', {self.kind}]; fix the file, or set "
                                  f"`on_error: quarantine` on the source to skip and count such records")
            out.quarantined[reason] += 1
            out.quarantine.append({"file": file.name, "record": index, "reason": reason, "detail": detail,
                                   "raw": raw if isinstance(raw, (str, type(None))) else json.dumps(raw, ensure_ascii=False, default=str)[:2000]})

        def flush(i: int):
            if rows:
                try:
                    frame = self._frame(rows)
                except (*_frame_errors(), MixedKinds) as e:
                    kept = self._characters(files[i], rows, reject)  # a lone surrogate escape is no text at all
                    try:
                        if len(kept) == len(rows):
                            raise e
                        frame = self._frame(kept)
                    except _frame_errors():  # values the kind's schema cannot hold
                        frame = self._frame(self._fitting(files[i], kept, reject))
                    except MixedKinds:  # no schema: a field of two kinds
                        if self.on_error != "quarantine":
                            raise
                        frame = self._frame(self._one_kind(files[i], kept, reject))
                if frame.height:  # (every row of the batch may have been rejected)
                    pieces.append(frame.with_columns(pl.lit(i, pl.Int32).alias("_file")))
                rows.clear()

        for i in sorted(slow):
            file = files[i]
            try:
                for item in self.parse(file):
                    if isinstance(item, Bad):
                        reject(file, item.index, item.reason, item.detail, item.raw)
                        continue
                    if isinstance(item, Skip):
                        out.skipped[item.reason] += item.n
                        continue
                    rows.append(item)
                    if len(rows) >= BATCH_ROWS:
                        flush(i)
            except BadFile as e:
                reject(file, None, e.reason, e.detail)
            flush(i)
        out.cleaned.update(self._cleaned)
        out.warned |= self._warned
        if pieces:
            if self.schema is None and fast is not None and slow and len(pieces) > 1:
                # a file's rows beside the next one's in file order, as parse alone would put them: a field of two
                # kinds across files is then named by the same two records either way
                pieces = sorted([*pieces[0].partition_by("_file", maintain_order=True), *pieces[1:]],
                                key=lambda f: f["_file"][0])
            frame = self._concat(pieces) if len(pieces) > 1 else pieces[0]
            if fast is not None and slow and len(pieces) > 1:  # rows in file order
                frame = frame.sort("_file", maintain_order=True)
            out.frames.append(frame.drop("_file"))
        if parts is not None and out.frames:
            out.parts.append(parts.write(self._conform(self._lineage(out.frames.pop())), index))
        elif spill is not None and out.frames:  # a worker's rows, for the main process to read (see read)
            path = os.path.join(spill, f"{index:06d}.arrow")
            out.frames.pop().write_ipc(path, compat_level=pl.CompatLevel.newest())
            out.spilled.append(path)
        return out

    def __getstate__(self):  # sent to worker processes with each chunk: the file lists (and open archives) stay here
        return {**self.__dict__, "_inputs": None, "_input_list": None, "_fp_cache": None}

    def _characters(self, file: InputFile, rows: list[dict], reject) -> list[dict]:
        """The rows whose text is all characters; each one holding a lone surrogate (JSON's ``\\ud800`` escape with
        no other half: half of a character, which no UTF-8 column can hold) is rejected (``encoding``), naming its
        key and field. Only after the rows failed to make a frame together."""
        def bad(value) -> bool:
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return True
                return False
            if isinstance(value, dict):
                return any(bad(v) for v in value.values())
            if isinstance(value, list):
                return any(bad(v) for v in value)
            return False

        kept = []
        for row in rows:
            field_ = next((k for k, v in row.items() if bad(v)), None)
            if field_ is None:
                kept.append(row)
                continue
            shown = repr(row[field_])[:80] if isinstance(row[field_], str) else f"a {type(row[field_]).__name__}"
            reject(file, row.get("_key"), "encoding", f"field '{field_}' holds half of a character (a lone surrogate "
                   f"escape such as \\ud800, {shown}): not text; fix the record", {
                       k: (v.encode("utf-8", "backslashreplace").decode() if isinstance(v, str) else v)
                       for k, v in row.items() if not bad(v) or isinstance(v, str)})
        return kept

    def _fitting(self, file: InputFile, rows: list[dict], reject) -> list[dict]:
        """The rows whose values the kind's schema can hold; each other one is rejected (``wrong_type``), naming its
        key and field. Only after the rows of a file failed to make a frame together: no cost when they fit."""
        schema = {"_key": pl.String, **self.schema}
        fit = []
        for row in rows:
            if _builds([row], schema):
                fit.append(row)
                continue
            name, dtype = next(((n, t) for n, t in schema.items() if not _builds([{n: row.get(n)}], {n: t})),
                               (None, None))
            detail = (f"its values do not fit the columns {schema}" if name is None else
                      f"field '{name}' holds {row.get(name)!r:.80}, which does not fit {dtype}")
            reject(file, row.get("_key"), "wrong_type", detail, row)
        return fit

    def _one_kind(self, file: InputFile, rows: list[dict], reject) -> list[dict]:
        """Under ``on_error: quarantine``, for a source without a schema whose rows hold a field in two kinds one
        column cannot hold (mostly text, a few objects): the rows whose value is not of the field's usual kind (the
        kind most of its values have; the first one's on a tie) are rejected (``wrong_type``), naming key and field.
        Only after the rows failed to make a frame together; where their values still cannot be one column (objects
        of different shapes), the error stands."""
        for name in dict.fromkeys(k for r in rows for k in r if k != "_key"):
            kinds = Counter(type(r[name]) for r in rows if r.get(name) is not None)
            if len(kinds) < 2:
                continue
            usual = max(kinds, key=kinds.__getitem__)  # the first one most common (Counter keeps the order seen)
            sample = next(r[name] for r in rows if type(r.get(name)) is usual)
            fits = {usual: True}
            kept = []
            for row in rows:
                kind = type(row.get(name))
                if kind is not type(None) and fits.setdefault(kind, _builds([{"v": sample}, {"v": row[name]}])) is False:
                    reject(file, row.get("_key"), "wrong_type", f"field '{name}' holds {_kind(row[name])}, where "
                           f"{kinds[usual]:,} other records hold {_kinds(usual)}", row)
                    continue
                kept.append(row)
            rows = kept
        return rows

    def _mixed(self, where: str, within_file: bool = False) -> SourceError:
        """The error for a field of two kinds; within one file's rows, ``on_error: quarantine`` sets the odd ones
        aside (``_one_kind``), so the error says so."""
        aside = (", or set `on_error: quarantine` on the source to set aside the records whose kind is not the "
                 "field's usual one" if within_file and self.on_error == "fail" else "")
        return MixedKinds(f"source '{self.name}' ({self.kind}): {where}, which one column cannot hold; fix the "
                          f"records, or map only the fields you need with `options.fields`{aside}")

    def _concat(self, frames: list[pl.DataFrame]) -> pl.DataFrame:
        """Frames of this source put together; where it has no schema, one whose field is nested in one frame and of
        another kind in the next is an error (polars would make the nested values text)."""
        if self.schema is None and (where := _nested_beside_other(frames)):
            raise self._mixed(where)
        return pl.concat(frames, how="diagonal_relaxed")

    def _frame(self, rows: list[dict]) -> pl.DataFrame:
        if self.schema is None:
            if not rows:
                return pl.DataFrame({"_key": []}, schema={"_key": pl.String})
            try:
                return _to_frame(rows)
            except _frame_errors():
                raise self._mixed(_mixed_field(rows), within_file=True) from None
        schema = {"_key": pl.String, **self.schema}
        return _to_frame(rows, schema) if rows else pl.DataFrame(schema=schema)

    def _conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Rows of a kind with a fixed schema in its columns and types, as every part of its cache must be."""
        want = self._lineage(self._frame([])).schema
        return frame if frame.schema == want else frame.select([pl.col(c).cast(t) for c, t in want.items()])

    def _check_unique(self, keys: pl.Series, prefix: int = 0) -> None:
        from datafactory.hashing import first_repeated

        dup = first_repeated(keys)
        if dup is not None:
            raise SourceError(f"source '{self.name}' ({self.kind}): record key '{dup[prefix:]}' occurs "
                              f"{int((keys == dup).sum())} times;{self._same_name_twice()} each record needs a unique "
                              "key (for `files`, set `options.id` to a unique column)")

    def _same_name_twice(self) -> str:
        """For a repeated key: two inputs of one file name (a release both unpacked and zipped in the folder, or
        copied twice) are the usual cause; the first such pair, in words."""
        seen: dict[str, str] = {}
        for f in self.inputs():
            if f.basename in seen:
                return (f" the inputs hold two files named {f.basename} ({seen[f.basename]} and {f.name}): is a "
                        "release there twice (unpacked and zipped, or copied)? Point the source at one copy;")
            seen[f.basename] = f.name
        return ""

    def _lineage(self, frame: pl.DataFrame) -> pl.DataFrame:
        keys = frame["_key"].cast(pl.String)
        # a record's own id/source fields would clash with the lineage columns: keep them as record_*
        frame = frame.rename({c: f"record_{c}" for c in ("id", "source") if c in frame.columns})
        return frame.select(
            (pl.lit(self.name + "/") + keys).alias("id"),
            pl.lit(self.name).alias("source"),
            pl.exclude("_key"),
        )
