"""nikl_dialogue: 국립국어원 모두의 말뭉치 일상 대화 (SDRW*.json, 2020/2021/2022) and 메신저 (MDRW/MMRW).

One JSON object per file, one dialogue per document (docs/SOURCES.md 1.3). Consecutive utterances of one speaker
form a turn. As VAIV's ``make_dialogues.py`` did, a row pairs a turn of the dialogue's first speaker
(``instruction``) with the second speaker's reply (``output``); ``pairing: all`` pairs every turn with the
next, and ``context_turns: N`` keeps the N turns before in ``context`` for multi-turn data.

Options::

    text_field: form            # or original_form (raw phonetic transcription with all markup)
    topics: null                # or a list: topic.split(' > ')[0] must be one of these (SEED_TOPICS: the seed's 23)
    titles: null                # e.g. ["2인 일상 대화"] as the 2021 processor kept
    pairing: first_speaker      # or all
    context_turns: 0
    skip_overlap: false         # drop utterances noted '발화겹침' (overlapping speech)
    placeholders: {name: ○○}    # de-identified spans -> text; "{n}" takes the token's number
    guessed: keep               # ((추정 전사)): keep the guessed words, or drop them
    incomplete: drop            # -불완전- word fragments: drop (also their doubled copy in form), or keep without dashes

Every topic is kept by default: the 23 topics are the seed's choice, not the corpus's (2024 files say
"연애/결혼/가족/관혼상제"; 2020 news-based dialogues have "NWRW1900000040.15446 > ..."); a recipe that wants the
seed's mix names them (recipes/sft_v1.yaml). What cleaning changed is counted in the manifest (``cleaned``), and
unknown de-identification tokens are also a warning.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Literal

import polars as pl

from datafactory.korean import clean_utterance, drop_fragments
from datafactory.sources.base import Bad, BadFile, NoOptions, Skip, Source
from datafactory.sources.inputs import InputFile

# VAIV SFT_Instruct/conversation_set/make_dialogues.py (docs/SOURCES.md 1.5)
SEED_TOPICS = [
    "여행지(국내/해외)", "반려동물", "먹거리", "가족", "계절/날씨", "건강/다이어트", "꿈(목표)", "스포츠/레저",
    "회사/학교", "선물", "영화", "방송/연예", "아르바이트", "연애/결혼", "성격", "음악", "휴가", "취직",
    "경제/재테크", "관혼상제", "쇼핑", "우정", "대중교통",
]


class NiklOptions(NoOptions):
    text_field: Literal["form", "original_form"] = "form"
    topics: list[str] | None = None
    titles: list[str] | None = None
    pairing: Literal["first_speaker", "all"] = "first_speaker"
    context_turns: int = 0
    skip_overlap: bool = False
    placeholders: dict[str, str] = {}
    guessed: Literal["keep", "drop"] = "keep"
    incomplete: Literal["keep", "drop"] = "drop"


class NiklDialogueSource(Source):
    kind = "nikl_dialogue"
    description = "국립국어원 모두의 말뭉치: 일상 대화 (SDRW) and 메신저 (MDRW/MMRW) JSON."
    license = "국립국어원 모두의 말뭉치 이용 약관 (no redistribution)"
    license_name = "nikl-modu-corpus-terms"
    license_link = "https://kli.korean.go.kr/corpus/boards/termsInfo.do"
    redistribute = False
    skip_hints = {"topic": "options.topics keeps only the topics it lists; `topics: null` keeps every topic",
                  "title": "options.titles keeps only the titles it lists; `titles: null` keeps every title",
                  "empty_utterance": "the utterances hold only markup", "single_speaker": "dialogues with one speaker"}
    Options = NiklOptions
    patterns = ["SDRW*.json", "MDRW*.json", "MMRW*.json"]
    schema = {
        "instruction": pl.String, "output": pl.String, "context": pl.String, "topic": pl.String,
        "category": pl.String, "title": pl.String, "relation": pl.String, "dialogue_id": pl.String,
        "turn": pl.Int32, "instruction_speaker": pl.String, "output_speaker": pl.String,
    }

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        root = self.load_json(file)
        if not isinstance(root, dict) or not isinstance(root.get("document"), list):
            raise BadFile("missing_field", "no 'document' list at the root; is this a NIKL corpus JSON file?")
        for d_i, doc in enumerate(root["document"]):
            yield from self._document(d_i, doc, root.get("id") or file.basename.removesuffix(".json"))

    def _document(self, d_i: int, doc, file_id: str) -> Iterator[dict | Bad | Skip]:
        o = self.options
        if not isinstance(doc, dict) or not isinstance(doc.get("utterance"), list):
            yield Bad(f"document[{d_i}]", "missing_field", f"document[{d_i}] has no 'utterance' list", doc)
            return
        doc_id = str(doc.get("id") or f"{file_id}.{d_i + 1}")
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        topic = str(meta.get("topic") or "")
        category = topic.split(">")[0].strip()
        title = str(meta.get("title") or "")
        setting = meta.get("setting") if isinstance(meta.get("setting"), dict) else {}
        if o.topics is not None and category not in o.topics:
            yield Skip("topic")
            return
        if o.titles is not None and title not in o.titles:
            yield Skip("title")
            return

        turns: list[list] = []  # [speaker, [texts]]
        counts: Counter[str] = Counter()
        for u_i, u in enumerate(doc["utterance"]):
            where = u.get("id", f"{doc_id} utterance[{u_i}]") if isinstance(u, dict) else f"{doc_id} utterance[{u_i}]"
            if not isinstance(u, dict):
                yield Bad(where, "wrong_type", f"utterance {where} is not an object", u)
                continue
            raw, speaker = u.get(o.text_field), u.get("speaker_id")
            if not isinstance(raw, str) or speaker is None:
                missing = o.text_field if not isinstance(raw, str) else "speaker_id"
                yield Bad(where, "missing_field", f"utterance {where} has no string '{missing}'", u)
                continue
            if o.skip_overlap and u.get("note") == "발화겹침":
                yield Skip("overlap")
                continue
            original = u.get("original_form")
            if o.text_field == "form" and o.incomplete == "drop" and isinstance(original, str) and "-" in original:
                raw = drop_fragments(raw, original, counts)
            text = clean_utterance(raw, placeholders=o.placeholders or None, guessed=o.guessed, incomplete=o.incomplete,
                                   counts=counts)
            if not text:
                yield Skip("empty_utterance")
                continue
            speaker = str(speaker)
            if turns and turns[-1][0] == speaker:
                turns[-1][1].append(text)
            else:
                turns.append([speaker, [text]])

        for kind, n in counts.items():
            self.note(kind, n, warn=kind.startswith("unknown"))
        if len(turns) < 2:
            yield Skip("single_speaker")
            return
        labels: dict[str, str] = {}
        for speaker, _ in turns:
            labels.setdefault(speaker, "AB"[len(labels)] if len(labels) < 2 else f"S{len(labels) + 1}")
        texts = [" ".join(t) for _, t in turns]
        first = turns[0][0]
        for k in range(len(turns) - 1):
            if o.pairing == "first_speaker" and turns[k][0] != first:
                continue
            ctx = turns[max(0, k - o.context_turns):k] if o.context_turns else []
            start = k - len(ctx)
            yield {
                "_key": f"{doc_id}#{k}",
                "instruction": texts[k],
                "output": texts[k + 1],
                "context": "\n".join(f"{labels[s]}: {texts[start + j]}" for j, (s, _) in enumerate(ctx)),
                "topic": topic, "category": category, "title": title,
                "relation": str(setting.get("relation") or ""),
                "dialogue_id": doc_id, "turn": k,
                "instruction_speaker": turns[k][0], "output_speaker": turns[k + 1][0],
            }
