"""AIHub 텍스트 윤리검증: label JSON arrays and raw text (docs/SOURCES.md section 2)."""
from __future__ import annotations

import json

import polars as pl
import pytest

from datafactory.errors import SourceError
from datafactory.sources.aihub_ethics import LABELS
from tests.conftest import SAMPLES, both_paths, read_source

AIHUB = SAMPLES / "aihub_ethics"


@pytest.fixture(scope="module")
def sentences():
    return read_source("aihub_ethics", AIHUB).frame


def test_samples_cover_files_codes_and_intensities(sentences):
    assert sentences.height == 50 and sentences["id"].is_unique().all()
    assert set(sentences["file"]) == {"talksets-train-1_aihub", "talksets-train-2", "talksets-train-6"}
    codes = {c for types in sentences["types"] for c in types}
    assert codes == set(LABELS)
    assert sentences["intensity"].min() == 0.0 and sentences["intensity"].max() == 3.0
    clean = sentences.filter(pl.col("types").list.contains("IMMORAL_NONE"))
    assert (~clean["is_immoral"]).all() and (clean["intensity"] == 0).all()


def test_validation_is_train_6(sentences):
    by_file = dict(sentences.group_by("file").agg(pl.col("aihub_split").first()).iter_rows())
    assert by_file == {"talksets-train-1_aihub": "training", "talksets-train-2": "training", "talksets-train-6": "validation"}


def test_text_and_origin_text(sentences):
    row = sentences.filter(pl.col("id") == "s/talksets-train-1_aihub/101/1011").row(0, named=True)
    assert row["text"] == "그래도 주말에는 좀 쉬어야지" and row["origin_text"] == "그래도 주말에는 좀 쉬어야지 ㅋㅋ"


def raw_sentences() -> list[dict]:
    """Every sentence of the sample label files, read with plain json: the independent count."""
    return [s for f in sorted(AIHUB.rglob("talksets-train-*.json"))
            for talk in json.loads(f.read_text("utf-8")) for s in talk["sentences"]]


def test_filters_by_code_immorality_and_intensity():
    raw = raw_sentences()
    hate = read_source("aihub_ethics", AIHUB, types=["HATE"])
    assert hate.frame.height == sum("HATE" in s["types"] for s in raw) > 0
    assert hate.frame["types"].list.contains("HATE").all() and hate.skipped["type"] == 50 - hate.frame.height
    immoral = read_source("aihub_ethics", AIHUB, immoral=True).frame
    assert immoral["is_immoral"].all() and immoral.height == sum(s["is_immoral"] for s in raw)
    strong = read_source("aihub_ethics", AIHUB, min_intensity=2.0, max_intensity=2.8).frame
    assert strong["intensity"].is_between(2.0, 2.8).all()
    assert strong.height == sum(2.0 <= s["intensity"] <= 2.8 for s in raw) > 0
    first = read_source("aihub_ethics", AIHUB, positions="first").frame
    assert first.height == 24 and (first["position"] == 0).all()


def test_raw_text_files():
    raw = read_source("aihub_ethics", AIHUB, files="txt", positions="first").frame
    labelled = read_source("aihub_ethics", AIHUB, positions="first").frame
    assert raw.height == 24 and raw["types"].is_null().all()
    # raw line order matches the JSON order, and the raw text is the sentence's origin_text
    for raw_file, label_file in (("talksets-train-1", "talksets-train-1_aihub"), ("talksets-train-6", "talksets-train-6")):
        assert raw.filter(pl.col("file") == raw_file)["text"].to_list() == \
            labelled.filter(pl.col("file") == label_file)["origin_text"].to_list()
    both = read_source("aihub_ethics", AIHUB, files="both").frame
    assert both.height == 100
    with pytest.raises(SourceError, match="raw .txt files carry no labels"):
        read_source("aihub_ethics", AIHUB, files="txt", types=["HATE"])


def test_unknown_label_code_in_options():
    with pytest.raises(Exception, match="unknown label code 'HATRED'"):
        read_source("aihub_ethics", AIHUB, types=["HATRED"])


def write(tmp_path, talksets, name="talksets-train-3.json"):
    path = tmp_path / name
    path.write_text(json.dumps(talksets, ensure_ascii=False), "utf-8")
    return tmp_path


def test_tolerated_variations(tmp_path):
    talks = {"talksets": [{"id": 1, "sentences": [
        {"id": 1, "speaker": "2", "text": "넌 정말 최악이야", "types": "CENSURE", "is_immoral": "True", "intensity": "1.6"},
        {"id": 2, "text": "그만해", "types": ["IMMORAL_NONE"]},
    ]}]}
    df = read_source("aihub_ethics", write(tmp_path, talks)).frame
    assert df["types"].to_list() == [["CENSURE"], ["IMMORAL_NONE"]]
    assert df["is_immoral"].to_list() == [True, False] and df["intensity"].to_list() == [1.6, None]
    assert df["speaker"].to_list() == [2, None]


def test_null_ids_give_way_to_positions(monkeypatch, tmp_path):
    """A null talkset or sentence id is no id: the position stands in, as for an absent one (it was the text
    "None", and two talksets with null ids made one repeated key, which stopped the build)."""
    talks = [{"id": None, "sentences": [{"id": None, "text": "가", "types": []}, {"id": None, "text": "나", "types": []}]},
             {"id": None, "sentences": [{"text": "다", "types": []}]}]
    fast, slow = both_paths(monkeypatch, "aihub_ethics", write(tmp_path, talks))
    assert fast.frame.equals(slow.frame)
    assert fast.frame["id"].to_list() == ["s/talksets-train-3/0/0", "s/talksets-train-3/0/1", "s/talksets-train-3/1/0"]


def test_values_the_schema_cannot_hold_are_named_not_a_crash(monkeypatch, tmp_path):
    """An origin_text that is a list or an object made the frame of the file's rows fail inside polars, with no
    file or record named; now that record is rejected (wrong_type) with its key and field. A speaker that is NaN
    or past 32 bits is no speaker (NaN made int() raise)."""
    talks = [{"id": 1, "sentences": [
        {"id": 1, "text": "가", "types": [], "origin_text": ["가"]},
        {"id": 2, "text": "나", "types": [], "origin_text": {"a": 1}, "speaker": 1},
        {"id": 3, "text": "다", "types": [], "speaker": float("nan")},
        {"id": 4, "text": "라", "types": [], "speaker": 10**30},
        {"id": 5, "text": "마", "types": [], "speaker": "99999999999"},
        {"id": 6, "text": "바", "types": [], "speaker": 2, "origin_text": "바!"}]}]
    (tmp_path / "talksets-train-3.json").write_text(json.dumps(talks, ensure_ascii=False), "utf-8")  # NaN: as json writes it
    with pytest.raises(SourceError, match=r"talksets-train-3\.json, record talksets-train-3/1/1: field 'origin_text' "
                                          r"holds \['가'\], which does not fit String"):
        read_source("aihub_ethics", tmp_path)
    fast, slow = both_paths(monkeypatch, "aihub_ethics", tmp_path, on_error="quarantine")
    assert fast.frame.equals(slow.frame) and fast.quarantine == slow.quarantine
    assert fast.quarantined == {"wrong_type": 2}
    assert [q["record"] for q in fast.quarantine] == ["talksets-train-3/1/1", "talksets-train-3/1/2"]
    assert fast.frame["text"].to_list() == ["다", "라", "마", "바"] and fast.frame["speaker"].to_list() == [None] * 3 + [2]


@pytest.mark.parametrize("sentence,reason", [
    ({"id": 1, "types": ["HATE"]}, "missing_field"),
    ({"id": 1, "text": "x", "types": ["HATRED"]}, "unknown_label"),
    ({"id": 1, "text": "x", "types": ["HATE"], "intensity": "high"}, "wrong_type"),
    ("not an object", "wrong_type"),
])
def test_bad_sentences(tmp_path, sentence, reason):
    talks = [{"id": 1, "sentences": [sentence, {"id": 2, "text": "좋아", "types": ["IMMORAL_NONE"]}]}]
    path = write(tmp_path, talks)
    with pytest.raises(SourceError, match=r"talksets-train-3\.json, record talkset 0 sentence 0"):
        read_source("aihub_ethics", path)
    read = read_source("aihub_ethics", path, on_error="quarantine")
    assert read.quarantined == {reason: 1} and read.frame.height == 1


def test_bad_raw_line_and_empty_file(tmp_path):
    (tmp_path / "talksets-train-4.txt").write_text("{좋아|그래}\n깨진 줄\n", "utf-8")
    read = read_source("aihub_ethics", tmp_path, files="txt", on_error="quarantine")
    assert read.quarantined == {"malformed_line": 1} and read.frame["text"].to_list() == ["좋아", "그래"]
    (tmp_path / "talksets-train-5.json").write_text("", "utf-8")
    assert read_source("aihub_ethics", tmp_path, on_error="quarantine").quarantined == {"empty_file": 1}


def test_cp949_json(tmp_path):
    talks = [{"id": 1, "sentences": [{"id": 1, "text": "안녕하세요", "types": ["IMMORAL_NONE"], "intensity": 0}]}]
    (tmp_path / "talksets-train-1_aihub.json").write_bytes(json.dumps(talks, ensure_ascii=False).encode("cp949"))
    with pytest.raises(SourceError, match="not valid utf-8"):
        read_source("aihub_ethics", tmp_path)
    assert read_source("aihub_ethics", tmp_path, encoding="auto").frame["text"].to_list() == ["안녕하세요"]


# -- the columnar fast path: the same rows, skips and errors as the per-record parser ------------------------
@pytest.mark.parametrize("options", [
    {}, {"positions": "first"}, {"types": ["HATE", "ABUSE"]}, {"immoral": True}, {"immoral": False},
    {"min_intensity": 1.0, "max_intensity": 2.5}, {"files": "both"}, {"types": ["CENSURE"], "immoral": True, "min_intensity": 2},
    {"context_turns": 2, "immoral": True}, {"context_turns": "all", "files": "both"},
])
def test_fast_path_gives_the_rows_of_the_record_parser(monkeypatch, options):
    fast, slow = both_paths(monkeypatch, "aihub_ethics", AIHUB, **options)
    assert fast.frame.height > 0 and fast.frame.equals(slow.frame)
    assert (fast.skipped, fast.quarantined) == (slow.skipped, slow.quarantined)


def test_fast_path_takes_the_variations_it_can_and_leaves_the_rest(monkeypatch, tmp_path):
    from datafactory.sources.aihub_ethics import AihubEthicsSource, AihubOptions

    takes = [{"sentences": [  # no talkset id: its position; ids null or absent; codes as one string; text as flags
        {"id": None, "speaker": "2", "text": " 넌 정말 최악이야 ", "types": "CENSURE", "is_immoral": " TRUE", "intensity": 2},
        {"text": "그만해", "types": [], "speaker": "둘"}, {"id": "s3", "text": "\u3000응\x1c", "types": ["HATE", "ABUSE"],
                                                          "is_immoral": None, "intensity_sum": 3}]},
        {"id": None, "sentences": []}, {"id": "t9", "sentences": [{"id": 0, "text": "좋아", "types": ["IMMORAL_NONE"],
                                                                   "is_immoral": False, "speaker": 1}]}]
    write(tmp_path, takes, "talksets-train-1_aihub.json")
    write(tmp_path, {"talksets": takes}, "talksets-train-2.json")  # the wrapper object
    write(tmp_path, [{"id": 1, "sentences": [{"text": "x", "types": ["HATE"], "intensity": "1.5", "speaker": 1.0}]}],
          "talksets-train-3.json")  # a numeric string and a float speaker: converted by parse
    write(tmp_path, [{"id": 1, "sentences": [{"text": "x", "types": ["HATRED"]}]}], "talksets-train-4.json")
    (tmp_path / "talksets-train-5.txt").write_text("{좋아|그래}\n", "utf-8")
    src = AihubEthicsSource("hate", str(tmp_path), AihubOptions(files="both"))
    assert src.parse_batch(src.inputs()).slow == [1, 2, 3, 4]
    fast, slow = both_paths(monkeypatch, "aihub_ethics", tmp_path, files="both", on_error="quarantine")
    assert fast.frame.equals(slow.frame) and fast.quarantined == slow.quarantined == {"unknown_label": 1}
    rows = fast.frame.filter(pl.col("file") == "talksets-train-1_aihub")
    assert rows["talkset_id"].to_list() == ["0", "0", "0", "t9"] and rows["sentence_id"].to_list() == ["0", "1", "s3", "0"]
    assert rows["text"].to_list() == ["넌 정말 최악이야", "그만해", "응", "좋아"] and rows["speaker"].to_list() == [2, None, None, 1]
    assert rows["is_immoral"].to_list() == [True, False, True, False] and rows["types"].to_list()[1] == []


_ODD = {  # values real label files could hold in each field: the fast path must take each as parse does, or leave it
    "types": [["HATE"], "HATE", "HATE, ABUSE", ["IMMORAL_NONE"], [], ["HATRED"], "", ["HATE", "HATE"], None, 5],
    "is_immoral": [True, False, "TRUE", "false", " True", "1", None, 1, 0, "아니오"],
    "intensity": [0, 1, 2.5, "1.5", None, -1, "x", True, 1e9],
    "intensity_sum": [None, 3, "2", 0],
    "speaker": [1, 2, "1", "둘", None, 1.0, 2.5, True],
    "text": ["", "  ", "안녕", " 넌 정말 ", "\u3000응\x1c", "줄\n바꿈", None, 5],
    "id": [None, "", "a/b", 1.5],
    "origin_text": [None, "", "원문", 5],
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_gives_the_rows_of_the_record_parser_on_mutated_files(monkeypatch, tmp_path, seed):
    """Files of two talksets each, odd values at random: the fast path takes the files whose values it can, and
    gives what parse gives for all of them (a planted slip in its id, text or intensity handling fails this)."""
    import random

    from datafactory.sources.aihub_ethics import AihubEthicsSource, AihubOptions

    rng = random.Random(seed)
    samples = [t for f in sorted(AIHUB.rglob("talksets-train-*.json")) for t in json.loads(f.read_text("utf-8"))]
    for k in range(30):
        talks = []
        for j in range(2):
            talk = json.loads(json.dumps(rng.choice(samples)))
            talk["id"] = rng.choice([None, 1000 + k, f"t{k}", ""]) if j == 0 else 2000 + k
            for sentence in talk["sentences"]:
                for field, values in _ODD.items():
                    if rng.random() < 0.04:
                        sentence[field] = rng.choice(values)
                    elif rng.random() < 0.01:
                        sentence.pop(field, None)
            if rng.random() < 0.05:
                talk["sentences"] = []
            if rng.random() < 0.03:
                talk["sentences"].append("not an object")
            talks.append(talk)
        write(tmp_path, {"talksets": talks} if k % 5 == 0 else talks, f"talksets-train-{k}.json")
    src = AihubEthicsSource("s", str(tmp_path), AihubOptions())
    assert 5 < len(src.parse_batch(src.inputs()).slow) < 25  # both paths are taken
    for options in ({}, {"positions": "first"}, {"types": ["HATE"]}, {"immoral": True}, {"min_intensity": 1.0},
                    {"context_turns": "all", "immoral": True}):
        fast, slow = both_paths(monkeypatch, "aihub_ethics", tmp_path, on_error="quarantine", **options)
        assert fast.frame.height > 0 and fast.quarantined, options
        assert fast.frame.equals(slow.frame), options
        assert (fast.skipped, fast.quarantined, fast.warnings) == (slow.skipped, slow.quarantined, slow.warnings), options


def test_history_holds_the_talkset_before_each_sentence(tmp_path):
    """The turns before a sentence, whatever the filters keep: a speaker's consecutive sentences are one turn, the
    turn right before the sentence is the assistant's."""
    talk = {"id": 7, "sentences": [
        {"text": "요즘 뭐 해?", "speaker": 1, "types": ["IMMORAL_NONE"], "is_immoral": False, "intensity": 0},
        {"text": "그냥 집에 있어.", "speaker": 2, "types": ["IMMORAL_NONE"], "is_immoral": False, "intensity": 0},
        {"text": "심심하다.", "speaker": 2, "types": ["IMMORAL_NONE"], "is_immoral": False, "intensity": 0},
        {"text": "너 같은 건 집에나 있어라.", "speaker": 1, "types": ["CENSURE"], "is_immoral": True, "intensity": 2},
    ]}
    (tmp_path / "talksets-train-1_aihub.json").write_text(json.dumps([talk], ensure_ascii=False), "utf-8")
    rows = read_source("aihub_ethics", tmp_path, immoral=True, context_turns="all").frame
    assert rows["text"].to_list() == ["너 같은 건 집에나 있어라."]
    assert rows["history"][0].to_list() == [{"role": "user", "content": "요즘 뭐 해?"},
                                           {"role": "assistant", "content": "그냥 집에 있어. 심심하다."}]
    one = read_source("aihub_ethics", tmp_path, immoral=True, context_turns=1).frame
    assert one["history"][0].to_list() == [{"role": "assistant", "content": "그냥 집에 있어. 심심하다."}]
    assert "history" not in read_source("aihub_ethics", tmp_path).frame.columns  # context_turns: 0
