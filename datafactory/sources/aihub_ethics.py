"""aihub_ethics: AIHub 텍스트 윤리검증 데이터 (dataSetSn=558), label JSON and raw text (docs/SOURCES.md section 2).

Label files are one JSON array of talksets per file (``talksets-train-1_aihub.json`` carries the ``_aihub``
suffix; validation is ``talksets-train-6.json``); each talkset has ``sentences`` with ``text``,
``origin_text``, ``types`` (a list of the 8 codes), ``is_immoral``, ``intensity`` (0-3) ... One row per sentence.
Raw files (``talksets-train-N.txt``) hold one talkset per line as ``{u1|u2|...}``; their rows have no labels.

Options::

    files: json              # json (labelled), txt (raw), or both
    positions: all           # or first: only a talkset's first sentence (VAIV used the first utterance as the prompt)
    types: [HATE, ABUSE]     # keep sentences with any of these codes (default: all)
    immoral: null            # true / false: keep only immoral / clean sentences
    min_intensity: null      # keep sentences with intensity >= this (and <= max_intensity)
    max_intensity: null
    context_turns: 0         # or N, or all: the talkset's turns before the sentence, in `history`

``history`` holds the turns before a row's sentence as ``{role, content}`` messages (consecutive sentences of one
speaker form a turn; the sentence is the user's, the turn before it the assistant's, and so on back), whatever
the filters keep: a kept sentence's history may hold sentences the filters left out. With 0 there is no
``history`` column.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from itertools import accumulate, chain
from typing import Annotated, Literal

import msgspec
import polars as pl
from pydantic import Field, field_validator

from datafactory.conversations import messages_type
from datafactory.jsonl import lines
from datafactory.sources.base import Bad, Batch, BadFile, NoOptions, Skip, Source
from datafactory.sources.inputs import InputFile

LABELS = ("IMMORAL_NONE", "CENSURE", "HATE", "DISCRIMINATION", "SEXUAL", "ABUSE", "VIOLENCE", "CRIME")


# The fast path's view of a label file (see NIKL's): the fields ``_sentence`` reads, with the types it takes as they
# are. Anything else (a wrapper object, a number where text belongs, a float speaker, a numeric string intensity)
# fails to decode and the file goes through ``parse``, which converts or reports it exactly. An id that is absent
# or null gives way to the position (two talksets with null ids are not one record).
class _Sentence(msgspec.Struct, gc=False):
    text: str
    id: str | int | None = None
    origin_text: str | None = None
    types: list[str] | str = msgspec.field(default_factory=list)
    is_immoral: bool | str | None = None
    intensity: float | None = None
    intensity_sum: float | None = None
    speaker: int | str | None = None


class _Talkset(msgspec.Struct, gc=False):
    sentences: list[_Sentence]
    id: str | int | None = None


_DECODER = msgspec.json.Decoder(list[_Talkset])


def _immoral(flag, types: list[str]) -> bool:
    """``is_immoral`` as given (true/false, or the text "True"), else whether any code is not IMMORAL_NONE."""
    if isinstance(flag, str):
        return flag.strip().lower() == "true"
    return any(t != "IMMORAL_NONE" for t in types) if flag is None else bool(flag)


def _speaker(value) -> int | None:
    """The speaker number: a number, or text int() takes ("2"); anything else (NaN, a number past 32 bits) is
    no speaker."""
    if isinstance(value, (int, float)) and math.isfinite(value) or isinstance(value, str) and value.isdecimal():
        n = int(value)
        return n if -2**31 <= n < 2**31 else None
    return None


_KNOWN = frozenset(LABELS)
_VALIDATION_STEM = re.compile(r"talksets-train-6(_aihub)?$")


def history_of(said: list[tuple], keep: int | str) -> list[dict]:
    """The turns before a sentence as messages: ``said`` is the talkset's (speaker, text) so far; consecutive
    sentences of one known speaker form a turn; the last ``keep`` turns (``all``: every one), the one right before
    the sentence the assistant's, then alternating back."""
    if not keep:
        return []
    turns: list[list] = []
    for speaker, text in said:
        if not text:
            continue
        if turns and speaker is not None and turns[-1][0] == speaker:
            turns[-1][1] += " " + text
        else:
            turns.append([speaker, text])
    turns = turns if keep == "all" else turns[-keep:]
    return [{"role": "assistant" if (len(turns) - j) % 2 else "user", "content": text}
            for j, (_, text) in enumerate(turns)]


def _stem_and_split(file: InputFile) -> tuple[str, str]:
    """The file's name without its extension (its rows' ``file``), and the AIHub split it belongs to."""
    stem = file.basename.rsplit(".", 1)[0]
    return stem, "validation" if _VALIDATION_STEM.search(stem) or "Validation" in file.name else "training"


class AihubOptions(NoOptions):
    files: Literal["json", "txt", "both"] = "json"
    positions: Literal["all", "first"] = "all"
    types: list[str] | None = None
    immoral: bool | None = None
    min_intensity: float | None = None
    max_intensity: float | None = None
    context_turns: Annotated[int, Field(ge=0)] | Literal["all"] = 0

    @field_validator("types")
    @classmethod
    def _known(cls, v):
        bad = [t for t in v or [] if t not in LABELS]
        if bad:
            raise ValueError(f"unknown label code '{bad[0]}'; the codes are {', '.join(LABELS)}")
        return v


class AihubEthicsSource(Source):
    kind = "aihub_ethics"
    description = "AIHub 텍스트 윤리검증 데이터: talkset JSON (labelled) and raw {u1|u2|...} text."
    license = "AIHub 이용 약관 (Korean nationals only; no redistribution)"
    license_name = "aihub-terms"
    license_link = "https://aihub.or.kr/aihubdata/data/view.do?dataSetSn=558"
    redistribute = False
    content_warning = ("Holds offensive Korean text on purpose: hate speech, discrimination, abuse, sexual and violent "
                       "language from AIHub 텍스트 윤리검증, used as prompts for harmlessness training.")
    skip_hints = {"type": "options.types keeps only the label codes it lists",
                  "not_immoral": "options.immoral: true keeps only immoral sentences",
                  "immoral": "options.immoral: false keeps only clean sentences",
                  "intensity": "options.min_intensity / max_intensity"}
    Options = AihubOptions
    @property
    def schema(self) -> dict:  # a property: polars is not touched when the module is imported
        return {
            "text": pl.String, "origin_text": pl.String, "types": pl.List(pl.String), "is_immoral": pl.Boolean,
            "intensity": pl.Float64, "intensity_sum": pl.Float64, "speaker": pl.Int32, "talkset_id": pl.String,
            "sentence_id": pl.String, "position": pl.Int32, "file": pl.String, "aihub_split": pl.String,
            **({"history": messages_type()} if self.options.context_turns else {}),
        }

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.patterns = {"json": ["talksets-train-*.json"], "txt": ["talksets-train-*.txt"],
                         "both": ["talksets-train-*.json", "talksets-train-*.txt"]}[self.options.files]

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        stem, split = _stem_and_split(file)
        if file.basename.endswith(".txt"):
            yield from self._raw(file, stem, split)
            return
        data = self.load_json(file)
        if isinstance(data, dict) and isinstance(data.get("talksets"), list):
            data = data["talksets"]  # a wrapper one design note shows; no real file seen with it
        if not isinstance(data, list):
            raise BadFile("wrong_type", f"expected a JSON array of talksets, got {type(data).__name__}")
        for t_i, talk in enumerate(data):
            if not isinstance(talk, dict) or not isinstance(talk.get("sentences"), list):
                yield Bad(t_i, "missing_field", f"talkset {t_i} has no 'sentences' list", talk)
                continue
            talk_id = str(t_i if talk.get("id") is None else talk["id"])
            said: list[tuple] = []  # (speaker, text) of the talkset's sentences so far
            for s_i, sent in enumerate(talk["sentences"]):
                if self.options.positions == "first" and s_i > 0:
                    break
                row = self._sentence(t_i, talk_id, s_i, sent, stem, split)
                if isinstance(row, dict):
                    if self.options.context_turns:
                        row["history"] = history_of(said, self.options.context_turns)
                    said.append((row["speaker"], row["text"]))
                    row = self._filter(row)
                else:
                    said.append((None, ""))
                yield row

    def parse_batch(self, files: list[InputFile]) -> Batch:
        """The columnar fast path for label files: typed decoding (msgspec), a file's sentences a field at a time,
        the filters as frame operations. Raw .txt files, and any file it cannot take exactly as ``parse`` would,
        go to ``parse``."""
        o = self.options
        cols: dict[str, list] = {k: [] for k in ("_key", "text", "origin_text", "types", "is_immoral", "intensity",
                                                 "intensity_sum", "speaker", "talkset_id", "sentence_id", "position",
                                                 "file", "aihub_split", "_file", "history")}
        slow: list[int] = []
        for i, file in enumerate(files):
            talks = None if file.basename.endswith(".txt") else self.decode_fast(file, _DECODER)
            if talks is None:
                slow.append(i)
                continue
            stem, split = _stem_and_split(file)
            sents, talk_ids, positions = [], [], []  # the file's sentences in one list: a comprehension per field
            for t_i, talk in enumerate(talks):
                ss = talk.sentences[:1] if o.positions == "first" else talk.sentences
                sents += ss
                talk_ids += [str(t_i if talk.id is None else talk.id)] * len(ss)
                positions += range(len(ss))
            types = [[x] if isinstance(x, str) else x for x in (s.types for s in sents)]
            if not all(map(_KNOWN.issuperset, types)):  # parse reports the unknown code
                slow.append(i)
                continue
            ids = [str(p if s.id is None else s.id) for p, s in zip(positions, sents)]
            n = len(sents)
            if o.context_turns:  # each sentence's talkset so far (positions restart at 0 with each talkset)
                said: list[tuple] = []
                for p, s in zip(positions, sents):
                    said = said if p else []
                    cols["history"].append(history_of(said, o.context_turns))
                    said.append((_speaker(s.speaker), s.text.strip()))
            cols["_key"] += [f"{stem}/{t}/{x}" for t, x in zip(talk_ids, ids)]
            cols["text"] += [s.text.strip() for s in sents]
            cols["origin_text"] += [s.origin_text for s in sents]
            cols["types"] += types
            cols["is_immoral"] += list(map(_immoral, (s.is_immoral for s in sents), types))
            cols["intensity"] += [s.intensity for s in sents]
            cols["intensity_sum"] += [s.intensity_sum for s in sents]
            cols["speaker"] += [_speaker(s.speaker) for s in sents]
            cols["talkset_id"] += talk_ids
            cols["sentence_id"] += ids
            cols["position"] += positions
            cols["file"] += [stem] * n
            cols["aihub_split"] += [split] * n
            cols["_file"] += [i] * n
        import pyarrow as pa

        # the label lists as one flat column and offsets: polars builds a list of lists one inner Series at a time
        types = cols.pop("types")
        offsets = [0, *accumulate(map(len, types))]
        flat = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                        pa.array(list(chain.from_iterable(types)), pa.string()))
        schema = {"_key": pl.String, **self.schema, "_file": pl.Int32}
        turns = cols.pop("history")
        extra = [pl.Series("history", turns, dtype=schema["history"])] if o.context_turns else []
        frame = pl.DataFrame(cols, schema={k: v for k, v in schema.items() if k not in ("types", "history")}).with_columns(
            pl.Series("types", flat, dtype=schema["types"]), *extra).select(list(schema))
        skipped: Counter[str] = Counter()
        x = pl.col("intensity").fill_null(0.0)
        for reason, drop in [
            ("type", None if o.types is None else ~pl.col("types").list.eval(pl.element().is_in(o.types)).list.any()),
            ("immoral", None if o.immoral is None or o.immoral else pl.col("is_immoral")),
            ("not_immoral", None if o.immoral is None or not o.immoral else ~pl.col("is_immoral")),
            ("intensity", None if o.min_intensity is None and o.max_intensity is None else
             (x < o.min_intensity if o.min_intensity is not None else pl.lit(False))
             | (x > o.max_intensity if o.max_intensity is not None else pl.lit(False))),
        ]:
            if drop is not None:
                gone = frame.select(drop.fill_null(False)).to_series()
                if gone.any():
                    skipped[reason] += int(gone.sum())
                    frame = frame.filter(~gone)
        return Batch(frame, skipped, slow)

    def _sentence(self, t_i: int, talk_id: str, s_i: int, sent, stem: str, split: str) -> dict | Bad:
        where = f"talkset {t_i} sentence {s_i}"
        if not isinstance(sent, dict):
            return Bad(where, "wrong_type", f"{where} is not an object", sent)
        text = sent.get("text")
        if not isinstance(text, str):
            return Bad(where, "missing_field", f"{where} has no string 'text'", sent)
        types = sent.get("types", [])
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or any(t not in LABELS for t in types):
            return Bad(where, "unknown_label", f"{where} has label codes {types!r}; known: {', '.join(LABELS)}", sent)
        try:
            intensity = None if sent.get("intensity") is None else float(sent["intensity"])
            isum = None if sent.get("intensity_sum") is None else float(sent["intensity_sum"])
        except (TypeError, ValueError):
            return Bad(where, "wrong_type", f"{where} has a non-numeric intensity {sent.get('intensity')!r}", sent)
        sentence_id = str(s_i if sent.get("id") is None else sent["id"])
        return {
            "_key": f"{stem}/{talk_id}/{sentence_id}",
            "text": text.strip(), "origin_text": sent.get("origin_text"), "types": types,
            "is_immoral": _immoral(sent.get("is_immoral"), types), "intensity": intensity, "intensity_sum": isum,
            "speaker": _speaker(sent.get("speaker")),
            "talkset_id": talk_id, "sentence_id": sentence_id, "position": s_i, "file": stem,
            "aihub_split": split,
        }

    def _filter(self, row: dict) -> dict | Skip:
        o = self.options
        if o.types is not None and not set(o.types) & set(row["types"]):
            return Skip("type")
        if o.immoral is not None and row["is_immoral"] != o.immoral:
            return Skip("immoral" if row["is_immoral"] else "not_immoral")
        x = row["intensity"] if row["intensity"] is not None else 0.0
        if o.min_intensity is not None and x < o.min_intensity or o.max_intensity is not None and x > o.max_intensity:
            return Skip("intensity")
        return row

    def _raw(self, file: InputFile, stem: str, split: str) -> Iterator[dict | Bad | Skip]:
        o = self.options
        if o.types is not None or o.immoral is not None or o.min_intensity is not None or o.max_intensity is not None:
            raise BadFile("no_labels", "raw .txt files carry no labels, so label filters cannot apply; use files: json")
        for i, line in enumerate(lines(self.text(file))):
            line = line.strip()
            if not line:
                continue
            if not (line.startswith("{") and line.endswith("}")):
                yield Bad(i, "malformed_line", f"line {i + 1} is not a {{u1|u2|...}} talkset", line[:500])
                continue
            said: list[tuple] = []
            for p, utt in enumerate(line[1:-1].split("|")):
                if o.positions == "first" and p > 0:
                    break
                if not utt.strip():
                    yield Skip("empty_utterance")
                    continue
                row = {"_key": f"{stem}.txt/{i}/{p}", "text": utt.strip(), "origin_text": None, "types": None,
                       "is_immoral": None, "intensity": None, "intensity_sum": None, "speaker": None,
                       "talkset_id": str(i), "sentence_id": str(p), "position": p, "file": stem, "aihub_split": split}
                if o.context_turns:
                    row["history"] = history_of(said, o.context_turns)
                yield row
                said.append((None, utt.strip()))
