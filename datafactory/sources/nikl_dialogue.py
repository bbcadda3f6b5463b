"""nikl_dialogue: 국립국어원 모두의 말뭉치 일상 대화 (SDRW*.json, 2020/2021/2022) and 메신저 (MDRW/MMRW).

One JSON object per file, one dialogue per document (docs/SOURCES.md 1.3). Consecutive utterances of one speaker
form a turn. As VAIV's ``make_dialogues.py`` did, a row pairs a turn of the dialogue's first speaker
(``instruction``) with the second speaker's reply (``output``); ``pairing: all`` pairs every turn with the
next. ``context_turns: N`` (or ``all``) keeps the N turns before the instruction as the conversation that leads to
it: ``history``, a list of ``{role, content}`` messages where the speakers are mapped to ``user`` and ``assistant``
alternately from the answer backwards (the instruction's speaker is the user, the turn before it the assistant...),
and ``context``, the same turns as ``A: ...`` lines (A the dialogue's first speaker). With 0 there is no
``history`` column (rows are single-turn).

Options::

    text_field: form            # or original_form (raw phonetic transcription with all markup)
    topics: null                # or a list: topic.split(' > ')[0] must be one of these (SEED_TOPICS: the seed's 23)
    titles: null                # e.g. ["2인 일상 대화"] as the 2021 processor kept
    pairing: first_speaker      # or all
    context_turns: 0            # or N, or all: the earlier turns kept in `history` (and `context`)
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
from typing import Annotated, Literal

import polars as pl

import msgspec
from pydantic import Field

from datafactory.conversations import messages_type
from datafactory.korean import clean_column, clean_utterance, drop_fragments
from datafactory.sources.base import Bad, Batch, BadFile, NoOptions, Skip, Source
from datafactory.sources.inputs import InputFile


# The fast path's view of a file: only the fields the parser reads, with the types it accepts without a
# question. Anything else (a missing field, a number where text belongs, not an object) fails to decode, and the
# file goes through ``parse``, which reports it exactly. Unknown fields are skipped unread.
class _Utterance(msgspec.Struct):
    speaker_id: str | int | None = None
    form: str | None = None
    original_form: str | None = None
    note: str | None = None


class _Setting(msgspec.Struct):
    relation: str | None = None


class _DocMeta(msgspec.Struct):
    topic: str | None = None
    title: str | None = None
    setting: _Setting | None = None


class _Document(msgspec.Struct):
    utterance: list[_Utterance]
    id: str | None = None
    metadata: _DocMeta | None = None


class _File(msgspec.Struct):
    document: list[_Document]
    id: str | None = None


_DECODER = msgspec.json.Decoder(_File)


def role_before(offset: int) -> str:
    """The role of the turn ``offset`` turns before the instruction: the user speaks the instruction, so the turn
    right before it is the assistant's, the one before that the user's, and so on."""
    return "assistant" if offset % 2 else "user"

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
    context_turns: Annotated[int, Field(ge=0)] | Literal["all"] = 0
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
    @property
    def schema(self) -> dict:  # a property: polars is not touched when the module is imported
        return {
            "instruction": pl.String, "output": pl.String, "context": pl.String, "topic": pl.String,
            "category": pl.String, "title": pl.String, "relation": pl.String, "dialogue_id": pl.String,
            "turn": pl.Int32, "instruction_speaker": pl.String, "output_speaker": pl.String,
            # the earlier turns, where asked for: an empty list column costs its every later step time
            **({"history": messages_type()} if self.options.context_turns else {}),
        }

    def parse(self, file: InputFile) -> Iterator[dict | Bad | Skip]:
        root = self.load_json(file)
        if not isinstance(root, dict) or not isinstance(root.get("document"), list):
            raise BadFile("missing_field", "no 'document' list at the root; is this a NIKL corpus JSON file?")
        for d_i, doc in enumerate(root["document"]):
            yield from self._document(d_i, doc, root.get("id") or file.basename.removesuffix(".json"))

    def parse_batch(self, files: list[InputFile]) -> Batch:
        """The columnar fast path: typed JSON decoding (msgspec) into columns, the cleaning rules as polars
        expressions (the rest by ``clean_utterance``), turns and pairs as frame operations. Same rows as ``parse``."""
        o = self.options
        skipped: Counter[str] = Counter()
        slow: list[int] = []
        docs: dict[str, list] = {k: [] for k in ("file", "dialogue_id", "topic", "title", "relation")}
        utt: dict[str, list] = {k: [] for k in ("doc", "raw", "original", "speaker")}
        fragments = self._drops_fragments()  # original_form is read only to find them
        for i, file in enumerate(files):
            root = self.decode_fast(file, _DECODER)
            if root is None:
                slow.append(i)
                continue
            marks = (len(docs["file"]), len(utt["doc"]), skipped.copy())
            file_id = root.id or file.basename.removesuffix(".json")
            ok = True
            for d_i, doc in enumerate(root.document):
                meta = doc.metadata or _DocMeta()
                topic, title = meta.topic or "", meta.title or ""
                if o.topics is not None and topic.split(">")[0].strip() not in o.topics:
                    skipped["topic"] += 1
                    continue
                if o.titles is not None and title not in o.titles:
                    skipped["title"] += 1
                    continue
                d = len(docs["file"])
                docs["file"].append(i)
                docs["dialogue_id"].append(doc.id or f"{file_id}.{d_i + 1}")
                docs["topic"].append(topic)
                docs["title"].append(title)
                docs["relation"].append((meta.setting.relation if meta.setting else None) or "")
                # a document's utterances a field at a time (list comprehensions: a loop of appends per
                # utterance was a quarter of the parse); a speaker id that is a number becomes text in _pairs
                us = doc.utterance
                raws = [u.form for u in us] if o.text_field == "form" else [u.original_form for u in us]
                speakers = [u.speaker_id for u in us]
                if None in raws or None in speakers:
                    ok = False
                    break
                if o.skip_overlap:
                    keep = [u.note != "발화겹침" for u in us]
                    if not all(keep):
                        skipped["overlap"] += keep.count(False)
                        us, raws, speakers = ([x for x, k in zip(xs, keep) if k] for xs in (us, raws, speakers))
                utt["doc"] += [d] * len(us)
                utt["raw"] += raws
                if fragments:
                    utt["original"] += [u.original_form for u in us]
                utt["speaker"] += speakers
            if not ok:  # a record the per-record path must report: undo this file's rows
                for k in docs:
                    del docs[k][marks[0]:]
                for k in utt:
                    del utt[k][marks[1]:]
                skipped = marks[2]
                slow.append(i)
        return Batch(self._pairs(docs, utt, skipped), skipped, slow)

    def _drops_fragments(self) -> bool:
        """``form`` keeps an incomplete word doubled; ``original_form`` marks it, and ``incomplete: drop`` drops it."""
        return self.options.text_field == "form" and self.options.incomplete == "drop"

    def _pairs(self, docs: dict[str, list], utt: dict[str, list], skipped: Counter) -> pl.DataFrame:
        o = self.options
        counts: Counter[str] = Counter()
        raws = utt["raw"]
        if self._drops_fragments():  # the fragments original_form marks -frag-, first
            for i, original in enumerate(utt["original"]):
                if original is not None and "-" in original:
                    raws[i] = drop_fragments(raws[i], original, counts)
        u = pl.DataFrame({"doc": utt["doc"], "raw": raws, "speaker": utt["speaker"]},
                         schema={"doc": pl.Int64, "raw": pl.String, "speaker": pl.String},
                         strict=False)  # speaker: str(number), as the record parser does
        text, needs, cleaned = clean_column(u["raw"], o.placeholders or None)
        u = u.with_columns(text.alias("text"))
        for kind, n in cleaned.items():
            counts[kind] += int(n.filter(~needs).sum())
        if needs.any():
            rows = needs.arg_true()
            out = [clean_utterance(raw, placeholders=o.placeholders or None, guessed=o.guessed, incomplete=o.incomplete,
                                   counts=counts) for raw in u["raw"].gather(rows).to_list()]
            u = u.with_columns(u["text"].scatter(rows, pl.Series(out, dtype=pl.String)))
        for kind, n in counts.items():
            self.note(kind, n, warn=kind.startswith("unknown"))
        empty = u["text"] == ""
        skipped["empty_utterance"] += int(empty.sum())
        u = u.filter(~empty).select("doc", "speaker", "text")
        # consecutive utterances of one speaker form a turn. The frame is in document order, so "the same
        # document" is a comparison with the neighbouring row (windows over `doc` cost 3x more), and a turn's
        # texts are gathered as a list and joined (`str.join` in a group_by is 5x slower). Turn numbers are a
        # running count, sorted: said so, the group_by takes slices instead of hashing (3.1 -> 2.1 ms per 1,000 files)
        same_doc = lambda j: pl.col("doc").shift(j) == pl.col("doc")  # noqa: E731
        u = u.with_columns(((pl.col("speaker") != pl.col("speaker").shift(1)) | ~same_doc(1))
                           .fill_null(True).cum_sum().set_sorted().alias("_turn"))
        t = (u.group_by("_turn", maintain_order=True)
             .agg(pl.col("doc").first(), pl.col("speaker").first(), pl.col("text"))
             .with_columns(pl.col("text").list.join(" "), (~same_doc(1)).fill_null(True).alias("_start"))
             .with_row_index("_i")
             .with_columns((pl.col("_i") - pl.when("_start").then("_i").forward_fill()).alias("k"),
                           pl.when("_start").then("speaker").forward_fill().alias("_first")))
        skipped["single_speaker"] += len(docs["file"]) - t.filter(pl.col("k") == 1).height
        if skipped["single_speaker"] == 0:
            del skipped["single_speaker"]
        if skipped["empty_utterance"] == 0:
            del skipped["empty_utterance"]
        nxt = [pl.when(same_doc(-1)).then(pl.col("text").shift(-1)).alias("output"),
               pl.when(same_doc(-1)).then(pl.col("speaker").shift(-1)).alias("output_speaker")]
        if o.context_turns:
            t = t.with_columns(
                pl.col("k").min().over("doc", "speaker").rank("dense").over("doc").alias("_label"))
            label = (pl.when(pl.col("_label") == 1).then(pl.lit("A")).when(pl.col("_label") == 2).then(pl.lit("B"))
                     .otherwise(pl.lit("S") + pl.col("_label").cast(pl.String)))
            t = t.with_columns((label + ": " + pl.col("text")).alias("_line"))
        t = t.with_columns(*nxt)
        turns = t.select("_i", "text", "_line") if o.context_turns else None
        t = t.filter(pl.col("output").is_not_null())
        if o.pairing == "first_speaker":
            t = t.filter(pl.col("speaker") == pl.col("_first"))
        t = self._history(t, turns)
        d = pl.DataFrame(docs, schema={"file": pl.Int32, "dialogue_id": pl.String, "topic": pl.String,
                                       "title": pl.String, "relation": pl.String}).with_row_index("doc")
        d = d.with_columns(pl.col("doc").cast(pl.Int64),
                           pl.col("topic").str.split(">").list.first().str.strip_chars().alias("category"))
        t = t.join(d, on="doc", how="left", maintain_order="left")
        return t.select(
            (pl.col("dialogue_id") + "#" + pl.col("k").cast(pl.String)).alias("_key"),
            pl.col("text").alias("instruction"), "output", "context", "topic", "category", "title", "relation",
            "dialogue_id", pl.col("k").cast(pl.Int32).alias("turn"), pl.col("speaker").alias("instruction_speaker"),
            "output_speaker", *(["history"] if o.context_turns else []), pl.col("file").alias("_file"))

    def _history(self, t: pl.DataFrame, turns: pl.DataFrame | None) -> pl.DataFrame:
        """Each pair's ``history`` and ``context`` from the ``context_turns`` turns before it (``turns``: every turn of
        the batch by its running index ``_i``; ``k`` is a turn's place in its dialogue)."""
        if turns is None:
            return t.with_columns(pl.lit("").alias("context"))
        n = self.options.context_turns
        start = pl.col("_i") - (pl.col("k") if n == "all" else pl.min_horizontal(pl.col("k"), pl.lit(n)))
        before = (t.select("_i", pl.int_ranges(start, pl.col("_i"), dtype=pl.UInt32).alias("_j")).explode("_j")
                  .drop_nulls("_j").join(turns.rename({"_i": "_j"}), on="_j", how="left", maintain_order="left")
                  .with_columns(pl.when((pl.col("_i") - pl.col("_j")) % 2 == 1).then(pl.lit("assistant"))
                                .otherwise(pl.lit("user")).alias("role"))
                  .group_by("_i", maintain_order=True)
                  .agg(pl.struct(pl.col("role"), pl.col("text").alias("content")).alias("history"),
                       pl.col("_line").str.join("\n").alias("context")))
        return (t.join(before, on="_i", how="left", maintain_order="left")
                .with_columns(pl.col("context").fill_null(""), pl.col("history").fill_null(pl.lit([], dtype=messages_type()))))

    def _document(self, d_i: int, doc, file_id: str) -> Iterator[dict | Bad | Skip]:
        o = self.options
        fragments = self._drops_fragments()
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
            if fragments and isinstance(original, str) and "-" in original:
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
            ctx = turns[(0 if o.context_turns == "all" else max(0, k - o.context_turns)):k] if o.context_turns else []
            start = k - len(ctx)
            row = {
                "_key": f"{doc_id}#{k}",
                "instruction": texts[k],
                "output": texts[k + 1],
                "context": "\n".join(f"{labels[s]}: {texts[start + j]}" for j, (s, _) in enumerate(ctx)),
                "topic": topic, "category": category, "title": title,
                "relation": str(setting.get("relation") or ""),
                "dialogue_id": doc_id, "turn": k,
                "instruction_speaker": turns[k][0], "output_speaker": turns[k + 1][0],
            }
            if o.context_turns:
                row["history"] = [{"role": role_before(k - (start + j)), "content": texts[start + j]}
                                  for j in range(len(ctx))]
            yield row
