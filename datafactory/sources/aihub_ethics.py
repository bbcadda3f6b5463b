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
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

import polars as pl
from pydantic import field_validator

from datafactory.sources.base import Bad, BadFile, NoOptions, Skip, Source
from datafactory.sources.inputs import InputFile

LABELS = ("IMMORAL_NONE", "CENSURE", "HATE", "DISCRIMINATION", "SEXUAL", "ABUSE", "VIOLENCE", "CRIME")
_VALIDATION_STEM = re.compile(r"talksets-train-6(_aihub)?$")


class AihubOptions(NoOptions):
    files: Literal["json", "txt", "both"] = "json"
    positions: Literal["all", "first"] = "all"
    types: list[str] | None = None
    immoral: bool | None = None
    min_intensity: float | None = None
    max_intensity: float | None = None

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
        }

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.patterns = {"json": ["talksets-train-*.json"], "txt": ["talksets-train-*.txt"],
                         "both": ["talksets-train-*.json", "talksets-train-*.txt"]}[self.options.files]

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        stem = file.basename.rsplit(".", 1)[0]
        split = "validation" if _VALIDATION_STEM.search(stem) or "Validation" in file.name else "training"
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
            talk_id = str(talk.get("id", t_i))
            for s_i, sent in enumerate(talk["sentences"]):
                if self.options.positions == "first" and s_i > 0:
                    break
                row = self._sentence(t_i, talk_id, s_i, sent, stem, split)
                if isinstance(row, dict):
                    row = self._filter(row)
                yield row

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
        immoral = sent.get("is_immoral")
        if isinstance(immoral, str):
            immoral = immoral.strip().lower() == "true"
        if immoral is None:
            immoral = any(t != "IMMORAL_NONE" for t in types)
        speaker = sent.get("speaker")
        return {
            "_key": f"{stem}/{talk_id}/{sent.get('id', s_i)}",
            "text": text.strip(), "origin_text": sent.get("origin_text"), "types": types, "is_immoral": bool(immoral),
            "intensity": intensity, "intensity_sum": isum,
            "speaker": int(speaker) if isinstance(speaker, (int, float)) or (isinstance(speaker, str) and speaker.isdigit()) else None,
            "talkset_id": talk_id, "sentence_id": str(sent.get("id", s_i)), "position": s_i, "file": stem,
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
        for i, line in enumerate(self.text(file).splitlines()):
            line = line.strip()
            if not line:
                continue
            if not (line.startswith("{") and line.endswith("}")):
                yield Bad(i, "malformed_line", f"line {i + 1} is not a {{u1|u2|...}} talkset", line[:500])
                continue
            for p, utt in enumerate(line[1:-1].split("|")):
                if o.positions == "first" and p > 0:
                    break
                if not utt.strip():
                    yield Skip("empty_utterance")
                    continue
                yield {"_key": f"{stem}.txt/{i}/{p}", "text": utt.strip(), "origin_text": None, "types": None,
                       "is_immoral": None, "intensity": None, "intensity_sum": None, "speaker": None,
                       "talkset_id": str(i), "sentence_id": str(p), "position": p, "file": stem, "aihub_split": split}
