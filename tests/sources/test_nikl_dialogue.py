"""NIKL 모두의 말뭉치 daily conversation and messenger: every quirk in docs/SOURCES.md section 1."""
from __future__ import annotations

import json
import os
from collections import Counter
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from datafactory.errors import SourceError
from datafactory.korean import clean_utterance, drop_fragments, replace_pseudonyms
from datafactory.sources.inputs import _zip_member_name, resolve_inputs
from datafactory.sources.nikl_dialogue import SEED_TOPICS, NiklDialogueSource, NiklOptions
from tests.conftest import SAMPLES, both_paths, read_source

NIKL = SAMPLES / "nikl_dialogue"


@pytest.fixture(scope="module")
def samples():
    return read_source("nikl_dialogue", NIKL)


def test_samples_parse_to_expected_rows(samples):
    df = samples.frame
    assert samples.files == 31  # 11 (2020) + 9 (2021) + 8 (2022, in the zip) + 2 (2024) + 1 messenger
    assert df.height == 91
    assert samples.skipped == {"empty_utterance": 10}
    assert {d[:6] for d in df["dialogue_id"]} == {"SDRW20", "SDRW21", "SDRW22", "SDRW24", "MDRW19"}
    assert df["id"].is_unique().all()


def test_every_topic_by_default_and_the_seeds_23_on_request(samples):
    """The 23 topics are the seed's choice: by default nothing is dropped for its topic (2024 files say
    "연애/결혼/가족/관혼상제", 2020 news-based dialogues "NWRW1900000040.15446 > ...")."""
    categories = set(samples.frame["category"])
    assert {"연애/결혼/가족/관혼상제", "NWRW1900000040.15446", "교육", "사회 이슈"} <= categories
    seed = read_source("nikl_dialogue", NIKL, topics=SEED_TOPICS)
    assert seed.skipped == {"empty_utterance": 7, "topic": 5} and set(seed.frame["category"]) <= set(SEED_TOPICS)


def test_no_markup_survives(samples):
    text = " ".join(samples.frame["instruction"].to_list() + samples.frame["output"].to_list())
    for mark in ("{", "}", "((", "&", "~", "name1", "name2", "address", "company-name"):
        assert mark not in text, mark
    assert "  " not in text


def test_consecutive_utterances_of_one_speaker_form_one_turn(samples):
    row = samples.frame.filter(pl.col("id") == "s/SDRW2000000001.1#0").row(0, named=True)
    assert row["instruction"] == "○○ 씨는 요즘 뭐 먹고 지내요?"  # "음~ &name1& 씨는" / "음~ name1 씨는"
    assert row["output"] == "저는 요즘 회사 근처 국밥집만 가요. 거기 국밥이 진짜 맛있거든요."


def test_form_versus_original_form():
    form = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2020_v1.3").frame
    raw = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2020_v1.3", text_field="original_form").frame
    pick = lambda df: df.filter(pl.col("id") == "s/SDRW2000000001.1#2")["output"][0]  # noqa: E731
    assert pick(form) == "한 그릇에 9,000원이요." and pick(raw) == "한 그릇에 구천 원이요."


def test_pairing_rules_and_context():
    first = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2020_v1.3").frame
    every = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2020_v1.3", pairing="all").frame
    assert every.height > first.height
    assert (first["instruction_speaker"] != first["output_speaker"]).all()
    # first_speaker pairs only start at the dialogue's first speaker
    starts = first.group_by("dialogue_id").agg(pl.col("instruction_speaker").n_unique())
    assert (starts["instruction_speaker"] == 1).all()
    ctx = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2020_v1.3", context_turns=2).frame
    row = ctx.filter(pl.col("id") == "s/SDRW2000000001.1#2").row(0, named=True)
    assert row["context"] == "A: ○○ 씨는 요즘 뭐 먹고 지내요?\nB: 저는 요즘 회사 근처 국밥집만 가요. 거기 국밥이 진짜 맛있거든요."
    # the same turns as the conversation before the instruction: the user speaks it, the assistant the turn before
    assert row["history"] == [{"role": "user", "content": "○○ 씨는 요즘 뭐 먹고 지내요?"},
                              {"role": "assistant", "content": "저는 요즘 회사 근처 국밥집만 가요. 거기 국밥이 진짜 맛있거든요."}]
    assert "history" not in first.columns and (first["context"] == "").all()  # context_turns: 0: single-turn rows


def test_history_all_holds_every_earlier_turn_with_roles_alternating_back_from_the_answer():
    every = read_source("nikl_dialogue", NIKL, pairing="all", context_turns="all").frame
    two = read_source("nikl_dialogue", NIKL, pairing="all", context_turns=2).frame
    assert (every["history"].list.len() == every["turn"]).all()  # turn k has the k turns before it
    assert (two["history"].list.len() == every["turn"].clip(upper_bound=2)).all()
    for row in every.filter(pl.col("turn") >= 3).head(20).iter_rows(named=True):
        roles = [m["role"] for m in row["history"]]
        assert roles[-1] == "assistant" and roles[-2] == "user" and all(a != b for a, b in zip(roles, roles[1:]))
        assert len(row["context"].splitlines()) == row["turn"]
        assert [line.split(": ", 1)[1] for line in row["context"].splitlines()] == [m["content"] for m in row["history"]]
    # a dialogue of three speakers still alternates (the roles say who answers whom, not who spoke)
    three = every.filter((pl.col("title") == "3인 일상 대화") & (pl.col("turn") >= 2))
    assert three.height
    for row in three.iter_rows(named=True):
        roles = [m["role"] for m in row["history"]]
        assert roles[-1] == "assistant" and all(a != b for a, b in zip(roles, roles[1:]))


def test_topic_title_and_overlap_options():
    all_topics = read_source("nikl_dialogue", NIKL, topics=None)
    assert "topic" not in all_topics.skipped
    assert {"교육", "사회 이슈"} <= set(all_topics.frame["category"])
    assert "여행 (여행지, 계획 등)" in set(all_topics.frame["topic"])  # the messenger dialogue
    titled = read_source("nikl_dialogue", NIKL, titles=["3인 일상 대화"])
    assert set(titled.frame["title"]) == {"3인 일상 대화"} and titled.skipped["title"] > 20
    overlap = read_source("nikl_dialogue", NIKL, skip_overlap=True)
    assert overlap.skipped["overlap"] == 1  # the '발화겹침' utterance in the Osaka dialogue


def test_messenger_tags_are_removed():
    df = read_source("nikl_dialogue", NIKL / "NIKL_MESSENGER_v2.0", topics=None)
    text = " ".join(df.frame["instruction"].to_list() + df.frame["output"].to_list())
    assert "{" not in text and "○○도 같이 간대" in text
    assert df.skipped == {"empty_utterance": 2}  # "{emoji}" and "{system: call}" alone


@pytest.mark.parametrize("raw,clean", [
    ("음~ 그렇지~ 맞아", "그렇지 맞아"),
    ("아~ 네 {applausing} 좋아요 {applauding}", "네 좋아요"),
    ("어~ {laughing} 그게 ((xx)) 말이야 (())", "그게 말이야"),
    ("((추정 전사)) 했어", "추정 전사 했어"),
    ("-우-우도는 가까워", "우도는 가까워"),
    ("&name1&이랑 &name2& 님 &tel-num& &social-security-num&", "○○이랑 ○○ 님 010-0000-0000 000000-0000000"),
    ("name3가 username 이랑 names", "○○가 username 이랑 names"),
    ("&brands2& &others& &affiliation1&", "○○ ○○ ○○"),
])
def test_clean_utterance(raw, clean):
    assert clean_utterance(raw) == clean


def test_cleaning_options():
    assert clean_utterance("((추정)) 했어", guessed="drop") == "했어"
    assert clean_utterance("-우-우도", incomplete="keep") == "우우도"
    assert replace_pseudonyms("&name1&와 name2", {"name": "사람{n}"}) == "사람1와 사람2"
    df = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2020_v1.3", placeholders={"name": "민지"}).frame
    assert df.filter(pl.col("id") == "s/SDRW2000000001.1#0")["instruction"][0] == "민지 씨는 요즘 뭐 먹고 지내요?"


def test_zip_and_folder_give_the_same_rows(tmp_path):
    folder = NIKL / "NIKL_DIALOGUE_2020_v1.3"
    archive = tmp_path / "NIKL_DIALOGUE_2020_v1.3.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"NIKL_DIALOGUE_2020_v1.3/{p.name}")
    a = read_source("nikl_dialogue", folder).frame.drop("id")
    b = read_source("nikl_dialogue", archive).frame.drop("id")
    assert a.equals(b)
    # and the 2022 zip (nested folder) against its unpacked copy
    with zipfile.ZipFile(NIKL / "NIKL_DIALOGUE_2022_v1.0_JSON.zip") as zf:
        zf.extractall(tmp_path / "unpacked")
    assert any("/NIKL_DIALOGUE_2022_v1.0/SDRW22" in f.name for f in resolve_inputs(NIKL / "NIKL_DIALOGUE_2022_v1.0_JSON.zip", ["SDRW*.json"]))
    c = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2022_v1.0_JSON.zip").frame.drop("id")
    d = read_source("nikl_dialogue", tmp_path / "unpacked").frame.drop("id")
    assert c.height == 20 and c.equals(d)


def test_glob_path(tmp_path):
    df = read_source("nikl_dialogue", str(NIKL / "NIKL_DIALOGUE_202*_v1.*" / "SDRW*.json")).frame
    assert {d[:6] for d in df["dialogue_id"]} == {"SDRW20", "SDRW21", "SDRW24"}


def test_cp949_file(tmp_path):
    doc = json.loads((NIKL / "NIKL_DIALOGUE_2020_v1.3" / "SDRW2000000001.json").read_text("utf-8"))
    (tmp_path / "SDRW2000000001.json").write_bytes(json.dumps(doc, ensure_ascii=False).encode("cp949"))
    with pytest.raises(SourceError, match=r"SDRW2000000001\.json: not valid utf-8 at byte \d+; set `encoding: cp949`"):
        read_source("nikl_dialogue", tmp_path)
    utf8 = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2020_v1.3" / "SDRW2000000001.json").frame
    for enc in ("cp949", "euc-kr", "auto"):
        assert read_source("nikl_dialogue", tmp_path, encoding=enc).frame.equals(utf8)


def test_cp949_zip_member_names(tmp_path):
    archive = tmp_path / "korean.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("placeholder", b"x")
    info = zipfile.ZipInfo("일상대화/SDRW2000000001.json".encode("cp949").decode("cp437"))
    info.flag_bits &= ~0x800
    assert _zip_member_name(info) == "일상대화/SDRW2000000001.json"


@pytest.fixture
def broken(tmp_path):
    src = NIKL / "NIKL_DIALOGUE_2020_v1.3"
    for name in ("SDRW2000000001.json", "SDRW2000000002.json"):
        shutil.copy(src / name, tmp_path / name)
    return tmp_path


def test_truncated_file_fails_with_file_name_or_is_quarantined(broken):
    text = (broken / "SDRW2000000002.json").read_text("utf-8")
    (broken / "SDRW2000000002.json").write_text(text[: len(text) // 2], "utf-8")
    with pytest.raises(SourceError, match=r"SDRW2000000002\.json: invalid JSON at line \d+ .*truncated"):
        read_source("nikl_dialogue", broken)
    read = read_source("nikl_dialogue", broken, on_error="quarantine")
    assert read.quarantined == {"malformed_json": 1} and read.frame.height > 0
    assert read.quarantine[0]["file"] == "SDRW2000000002.json"


def test_a_file_gone_since_the_listing_is_named_or_quarantined_also_in_a_build(broken, project, monkeypatch):
    """A file listed, then moved or deleted before it was read (a sync or an unzip still running): a traceback
    (FileNotFoundError) from the parse, and under quarantine from the fingerprint after it; now the file is named,
    or quarantined as unreadable and the build goes on."""
    from datafactory.sources.inputs import InputFile
    from datafactory.sources.nikl_dialogue import NiklDialogueSource, NiklOptions

    for on_error, counts in (("fail", None), ("quarantine", {"unreadable": 1})):
        src = NiklDialogueSource("s", str(broken), NiklOptions(), on_error=on_error)
        src.inputs()
        gone = broken / "SDRW2000000002.json"
        kept = gone.read_bytes()
        gone.unlink()
        if counts is None:
            with pytest.raises(SourceError, match=r"SDRW2000000002\.json: listed, then gone: was it moved or deleted"):
                src.read()
        else:
            read = src.read()
            assert read.quarantined == counts and read.frame.height > 0
        gone.write_bytes(kept)
    # in a build: the file goes right before the parser reads it
    for f in broken.glob("SDRW*.json"):
        shutil.copy(f, project.root / "inputs" / f.name)
    project.recipe("d", {"sources": {"daily": {"kind": "nikl_dialogue", "path": "inputs", "on_error": "quarantine"}},
                         "steps": [{"template": {"template": "kullm"}}, {"rename": {"columns": {"output": "completion"}}}],
                         "output": {"format": "sft"}})
    read_bytes = InputFile.read_bytes

    def vanishing(self):
        if self.basename == "SDRW2000000002.json":
            Path(self.path).unlink(missing_ok=True)
        return read_bytes(self)

    monkeypatch.setattr(InputFile, "read_bytes", vanishing)
    built = project.factory().build("d")
    assert built.built and built.manifest["sources"]["daily"]["quarantined"] == {"unreadable": 1}


def test_missing_field_names_the_utterance(broken):
    doc = json.loads((broken / "SDRW2000000001.json").read_text("utf-8"))
    del doc["document"][0]["utterance"][3]["form"]
    (broken / "SDRW2000000001.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    with pytest.raises(SourceError, match=r"SDRW2000000001\.json, record SDRW2000000001\.1\.1\.4: .*no string 'form'"):
        read_source("nikl_dialogue", broken)
    read = read_source("nikl_dialogue", broken, on_error="quarantine")
    assert read.quarantined == {"missing_field": 1}


@pytest.mark.parametrize("content,reason", [("", "empty_file"), ('{"id": "x"}', "missing_field"), ("[1, 2]", "missing_field")])
def test_unusable_files(broken, content, reason):
    (broken / "SDRW2000000002.json").write_text(content, "utf-8")
    assert read_source("nikl_dialogue", broken, on_error="quarantine").quarantined == {reason: 1}


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        read_source("nikl_dialogue", tmp_path / "nope")
    with pytest.raises(SourceError, match=r"no file matching \['SDRW\*\.json'"):
        read_source("nikl_dialogue", tmp_path)


# -- quirks of real files (2020 and 2024 releases) ------------------------------------------------------------
@pytest.mark.parametrize("raw,clean", [
    ("이제 xx 장소로 가요", "이제 장소로 가요"),             # inaudible syllables that survive in form
    ("어제 맨시x 맨체스터 경기", "어제 맨시 맨체스터 경기"),
    ("x 했어 xxx는", "했어 는"),
    ("box 랑 x축 이랑 xbox 랑 x2", "box 랑 x축 이랑 xbox 랑 x2"),  # never inside a Latin word, number or before Hangul
])
def test_inaudible_x_in_form_is_removed(raw, clean):
    assert clean_utterance(raw) == clean


@pytest.mark.parametrize("raw,clean", [
    ("&company1& 다녀요 company2 근처", "○○회사 다녀요 ○○회사 근처"),   # 2024 kinds, with and without ampersands
    ("&art1& 봤어 art2 도", "○○ 봤어 ○○ 도"),
    ("&affiliation1& &brand1& brand2 &other1& other2 &url1& &email&", "○○ ○○ ○○ ○○ ○○ www.example.com abc@example.com"),
    ("art 수업이랑 other 팀", "art 수업이랑 other 팀"),   # bare words without a number stay (English in speech)
])
def test_every_deidentification_kind_is_replaced(raw, clean):
    assert clean_utterance(raw) == clean


def test_unknown_token_is_replaced_and_counted():
    counts = Counter()
    assert clean_utterance("&product1& 응원봉 &product2& 샀어", counts=counts) == "○○ 응원봉 ○○ 샀어"
    assert counts == {"unknown de-identification token &product& (replaced with ○○)": 2}


@pytest.mark.parametrize("form,original,clean", [
    ("것 같 같습니다", "것 -같- 같습니다", "것 같습니다"),
    ("산 산다는 건", "-산- 산다는 건", "산다는 건"),
    ("그 사람이 그 그러니까", "그 사람이 -그- 그러니까", "그 사람이 그러니까"),   # the determiner stays
    ("우우도는", "-우-우도는", "우도는"),
    ("저 제가 할게요", "-저- 제가 할게요", "제가 할게요"),                    # not a prefix, but alone once
    ("그 말 그 제가", "그 말 -그- 제가", "그 말 그 제가"),                    # ambiguous: kept
])
def test_doubled_fragments_in_form_are_dropped_by_the_marks(form, original, clean):
    assert drop_fragments(form, original) == clean


def test_2024_release_reads_cleanly():
    read = read_source("nikl_dialogue", NIKL / "NIKL_DIALOGUE_2024_v1.0")
    text = " ".join(read.frame["instruction"].to_list() + read.frame["output"].to_list())
    for left in ("x", "company", "art1", "affiliation", "brand", "product", "&", "같 같", "그 그럼"):
        assert left not in text, left
    assert "네 이제 장소로 가서 계약만 하면 돼요." in text and "다음 경기도 이길 것 같습니다." in text
    assert read.cleaned["repeated_fragment"] == 4 and read.cleaned["inaudible_x"] == 2
    assert read.warnings == ["unknown de-identification token &product& (replaced with ○○): 1"]
    assert set(read.frame["category"]) == {"연애/결혼/가족/관혼상제", "스포츠/레저"}


@pytest.mark.parametrize("encoding", ["utf-8", "auto", "cp949"])
def test_a_file_cut_inside_a_character_is_truncation_not_an_encoding(broken, encoding):
    enc = "cp949" if encoding == "cp949" else "utf-8"
    for f in broken.iterdir():
        f.write_bytes(f.read_text("utf-8").encode(enc))
    raw = (broken / "SDRW2000000002.json").read_bytes()
    cut = next(i for i in range(len(raw) // 2, len(raw)) if raw[i] >= 0x80) + 1  # inside a Hangul syllable
    (broken / "SDRW2000000002.json").write_bytes(raw[:cut])
    with pytest.raises(SourceError, match=r"SDRW2000000002\.json: the file ends in the middle of a character .*cut off") as e:
        read_source("nikl_dialogue", broken, encoding=encoding)
    assert "cp949" not in str(e.value).split("[source")[0]
    assert read_source("nikl_dialogue", broken, encoding=encoding, on_error="quarantine").quarantined == {"truncated": 1}


# -- the columnar fast path: the same rows, skips, counts and errors as the per-record parser ----------------
EDGE_UTTERANCES = [
    "음~음~ 그래", "어~~ 아~ 그~ 저~ 흠~ 응~ 맞아", "좋음~ 그렇지~~ 네~", "~음~ 시작", "음~", "~~", "{laughing}음~ 네",
    "a{b}c 음~", "{{x}} 음~ 그래", "((추정)) 음~", "(( )) 빈 괄호", "(((중첩))) 괄호", "((a((b))c))", "-불-완전 말",
    "x 표시", "name1 씨 음~", "&name1& 씨", "탭\t\t두 개  공백   셋", "\u00a0\u00a0앞뒤 nbsp\u00a0", "  양 끝 공백  ",
    "줄\n바꿈", "\x1c제어 문자\x1f", "유니코드\u3000공백", "", "   ", "이모지 😀 음~ 좋아", "한자 漢字 음~",
    "숫자 3~4개", "음 ~ 띄어진 물결", "가음~ 붙은 음~", "1음~ 숫자 뒤", "((xx)) (()) ((XX))", "{emoji}{emoji}",
    "\u3000전각 공백 앞뒤\u3000", "\u2009얇은 공백 앞", "뒤에 음~", "음~ 앞에", "{laughing}", "\u00a0 \u00a0",
]


@pytest.mark.parametrize("placeholders", [None, {"name": "사람{n}"}, {"이름": "○"}])
def test_vectorised_cleaning_matches_the_regex_rules(placeholders):
    from datafactory.korean import clean_column

    samples = [u["form"] for f in sorted(NIKL.rglob("SDRW*.json"))
               for d in json.loads(f.read_text("utf-8"))["document"] for u in d["utterance"]]
    values = EDGE_UTTERANCES + samples
    text, needs, cleaned = clean_column(pl.Series(values, dtype=pl.String), placeholders)
    got = {"t": text, "py": needs, "n": cleaned["pseudonym"], "x": cleaned["inaudible_x"]}
    fast = [(v, t, n, x) for v, t, py, n, x in zip(values, got["t"], got["py"], got["n"], got["x"]) if not py]
    if placeholders and "이름" in placeholders:  # a kind that is not ASCII letters: every value by the regex rules
        assert not fast
    else:
        assert len(fast) > len(values) // 3  # most values do not need the regex rules
    for value, text, n, x in fast:
        counts = Counter()
        assert text == clean_utterance(value, placeholders=placeholders, counts=counts), value
        assert (n, x) == (counts["pseudonym"], counts["inaudible_x"]) and set(counts) <= {"pseudonym", "inaudible_x"}, value


@pytest.mark.parametrize("placeholders", [None, {"product": "제품", "name": "누구"}, {"name": "사람{n}"}])
def test_vectorised_tokens_and_x_match_the_regex_rules_on_random_strings(placeholders):
    """Tokens and inaudible x next to digits, letters, '&', '-', '~', fillers, syllables, each other: the columnar
    pass either gives ``clean_utterance``'s text and counts or leaves the value to it."""
    import random

    from datafactory.korean import clean_column

    rng = random.Random(7)
    parts = ["name", "name1", "name12", "&name1&", "&name&", "company-name", "company-name2", "tel-num3", "others",
             "other", "others2", "art", "art1", "brand", "address", "&product3&", "&unknown1&", "product1", "id",
             "1", "23", "a", "s", "x", "xx", "xxx", "X", "&", "-", "~", "~~", "음~", "어~~", "((", "))", "{laughing}",
             " ", "  ", "\t", "\u00a0", "가", "철수", "는", "요", "○", "."]
    values = ["".join(rng.choice(parts) for _ in range(rng.randint(1, 8))) for _ in range(6000)]
    text, needs, cleaned = clean_column(pl.Series(values, dtype=pl.String), placeholders)
    fast_tokens = fast_x = 0
    for value, got, py, n, x in zip(values, text, needs, cleaned["pseudonym"], cleaned["inaudible_x"]):
        if py:
            continue
        counts = Counter()
        assert (got, n, x) == (clean_utterance(value, placeholders=placeholders, counts=counts),
                               counts["pseudonym"], counts["inaudible_x"]), value
        fast_tokens += n > 0
        fast_x += x > 0
    if placeholders and "{n}" in placeholders["name"]:
        assert fast_tokens == fast_x == 0  # numbered placeholders: values with letters by the regex rules
    else:
        assert fast_tokens > 300 and fast_x > 100  # the passes take many of the values with tokens or x runs


@pytest.mark.parametrize("options", [
    {}, {"pairing": "all", "context_turns": 2}, {"context_turns": "all"}, {"pairing": "all", "context_turns": "all"},
    {"text_field": "original_form"}, {"skip_overlap": True, "guessed": "drop"},
    {"incomplete": "keep", "placeholders": {"name": "사람{n}"}}, {"topics": SEED_TOPICS, "titles": ["2인 일상 대화"]},
])
def test_fast_path_gives_the_rows_of_the_record_parser(monkeypatch, options):
    fast, slow = both_paths(monkeypatch, "nikl_dialogue", NIKL, **options)
    assert fast.frame.height > 0 and fast.frame.equals(slow.frame)
    assert (fast.skipped, fast.cleaned, fast.warnings) == (slow.skipped, slow.cleaned, slow.warnings)


_ODD_FORMS = ["", "   ", "{laughing}", "음~", "x", "xx 네", "name1 씨", "&name2&이", "-아- 아니", "(())", "((추정)) 맞아",
              "네", "~", "@이름1", "어- 어", "{breath} 음"]


def _mutated(doc: dict, k: int, rng) -> dict:
    """A sample file with the quirks of real ones at random: utterances reordered, dropped, emptied or only markup,
    speaker ids changed (to a number too), overlap notes, fields missing or of the wrong type, documents doubled,
    ids and metadata missing."""
    d = json.loads(json.dumps(doc))
    d["id"] = f"SDRW9{k:09d}"
    if rng.random() < 0.2:
        d["document"] = json.loads(json.dumps(d["document"] * 2))
    for j, document in enumerate(d["document"]):
        document["id"] = f"SDRW9{k:09d}.{j + 1}"
        us = document["utterance"]
        if rng.random() < 0.2:
            rng.shuffle(us)
        for u in us:
            x = rng.random()
            if x < 0.1:
                u["form"] = u["original_form"] = rng.choice(_ODD_FORMS)
            elif x < 0.15:
                u["speaker_id"] = rng.choice([u["speaker_id"], "SDX", 3, "3"])
            elif x < 0.2:
                u["note"] = "발화겹침"
            elif x < 0.23:
                u["form"] += " " + rng.choice(_ODD_FORMS)
            elif x < 0.235:
                del u["form"]
            elif x < 0.24:
                u["speaker_id"] = None
            elif x < 0.245:
                u["form"] = 5
        if rng.random() < 0.1:
            del us[1:]
        if rng.random() < 0.1 and j == 0:
            del document["id"]
        meta = document.get("metadata") or {}
        if rng.random() < 0.1:
            meta.pop("setting", None)
        if rng.random() < 0.05:
            document["metadata"] = None
    if rng.random() < 0.1:
        del d["id"]
    return d


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_path_gives_the_rows_of_the_record_parser_on_mutated_files(monkeypatch, tmp_path, seed):
    import random

    rng = random.Random(seed)
    samples = [json.loads(f.read_text("utf-8")) for f in sorted(NIKL.rglob("SDRW*.json"))]
    for k in range(60):
        (tmp_path / f"SDRW9{k:09d}.json").write_text(json.dumps(_mutated(rng.choice(samples), k, rng), ensure_ascii=False),
                                                     "utf-8")
    src = NiklDialogueSource("s", str(tmp_path), NiklOptions())
    assert 3 <= len(src.parse_batch(src.inputs()).slow) <= 20  # both paths are taken
    for options in ({}, {"pairing": "all", "context_turns": 2}, {"context_turns": "all"}, {"skip_overlap": True},
                    {"guessed": "drop", "incomplete": "keep"}, {"text_field": "original_form"}):
        fast, slow = both_paths(monkeypatch, "nikl_dialogue", tmp_path, on_error="quarantine", **options)
        assert fast.frame.height > 100 and fast.quarantine and fast.skipped["single_speaker"], options
        assert fast.frame.equals(slow.frame), options
        assert (fast.skipped, fast.cleaned, fast.warnings, fast.quarantine) == \
            (slow.skipped, slow.cleaned, slow.warnings, slow.quarantine), options


def test_files_the_fast_path_cannot_take_keep_their_place_and_errors(monkeypatch, broken):
    good = json.loads((broken / "SDRW2000000001.json").read_text("utf-8"))
    odd = json.loads(json.dumps(good))
    odd["id"], odd["document"][0]["id"] = "SDRW1999999999", "SDRW1999999999.1"
    odd["document"][0]["utterance"][1]["speaker_id"] = 7  # a number: the per-record path takes this file
    odd["document"][0]["metadata"]["topic"] = 5
    (broken / "SDRW1999999999.json").write_text(json.dumps(odd, ensure_ascii=False), "utf-8")  # sorts first
    bad = json.loads(json.dumps(good))
    bad["id"], bad["document"][0]["id"] = "SDRW2000000003", "SDRW2000000003.1"
    bad["document"][0]["utterance"][2] = "not an object"
    (broken / "SDRW2000000003.json").write_text(json.dumps(bad, ensure_ascii=False), "utf-8")
    (broken / "SDRW2000000004.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(good).replace("SDRW2000000001", "SDRW2000000004").encode())
    numbers = json.loads(json.dumps(good).replace("SDRW2000000001", "SDRW2000000005"))
    for u in numbers["document"][0]["utterance"]:  # speaker ids as numbers only: the fast path takes the file
        u["speaker_id"] = int(u["speaker_id"].encode().hex(), 16) % 1000
    (broken / "SDRW2000000005.json").write_text(json.dumps(numbers, ensure_ascii=False), "utf-8")
    fast, slow = both_paths(monkeypatch, "nikl_dialogue", broken, on_error="quarantine")
    assert fast.frame.equals(slow.frame) and fast.quarantine == slow.quarantine == [
        {"file": "SDRW2000000003.json", "record": "SDRW2000000003.1 utterance[2]", "reason": "wrong_type",
         "detail": "utterance SDRW2000000003.1 utterance[2] is not an object", "raw": "not an object"}]
    files = fast.frame["dialogue_id"].unique(maintain_order=True).to_list()
    assert files == ["SDRW1999999999.1", "SDRW2000000001.1", "SDRW2000000002.1", "SDRW2000000003.1", "SDRW2000000004.1",
                     "SDRW2000000005.1"]
    assert fast.frame.filter(pl.col("dialogue_id") == "SDRW2000000005.1")["instruction_speaker"].str.contains(r"^\d+$").all()
    with pytest.raises(SourceError, match=r"SDRW2000000003\.json, record SDRW2000000003\.1 utterance\[2\]"):
        read_source("nikl_dialogue", broken)


def _numbered_copies(folder, files) -> None:
    """The sample files copied into ``folder`` under new, unique dialogue ids (SDRW0000000000, ...)."""
    for i, f in enumerate(files):
        doc = json.loads(f.read_text("utf-8"))
        doc["id"] = f"SDRW{i:010d}"
        for d in doc["document"]:
            d["id"] = f"SDRW{i:010d}.{d['id'].rsplit('.', 1)[-1]}"
        (folder / f"SDRW{i:010d}.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")


def test_worker_processes_give_the_same_rows_in_the_same_order(monkeypatch, tmp_path):
    import datafactory.sources.base as base

    _numbered_copies(tmp_path, sorted(NIKL.rglob("SDRW*.json")) * 3)
    monkeypatch.setattr(base, "CHUNK_FILES", 7)
    monkeypatch.setenv("DATAFACTORY_WORKERS", "1")
    one = read_source("nikl_dialogue", tmp_path, context_turns=1)
    monkeypatch.setenv("DATAFACTORY_WORKERS", "2")
    from datafactory.sources.nikl_dialogue import NiklDialogueSource

    calls = []
    real = NiklDialogueSource._read_chunk
    monkeypatch.setattr(NiklDialogueSource, "_read_chunk", lambda src, *a: calls.append(1) or real(src, *a))
    two = read_source("nikl_dialogue", tmp_path, context_turns=1)
    assert not calls  # the chunks ran in the worker processes (which import the module afresh), not here
    assert one.frame.height > 100 and one.frame.equals(two.frame)
    assert (one.skipped, one.cleaned) == (two.skipped, two.cleaned)
    # where there is no forkserver (Windows), the workers are spawned
    import multiprocessing

    methods = []
    get_context = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(multiprocessing, "get_context", lambda method=None: methods.append(method) or get_context(method))
    spawned = read_source("nikl_dialogue", tmp_path, context_turns=1)
    assert methods == ["spawn"] and not calls and spawned.frame.equals(one.frame)
    monkeypatch.setenv("DATAFACTORY_WORKERS", "many")
    with pytest.raises(SourceError, match="DATAFACTORY_WORKERS='many'"):
        read_source("nikl_dialogue", tmp_path)


def test_a_dialogue_id_in_two_files_is_named_by_its_key_from_the_cache_parts(monkeypatch, project):
    """Two files holding the same dialogue (a copy under another name) give the same record keys: the build
    stops on the first repeated key, named without the source's prefix, with its count, and publishes nothing."""
    import datafactory.sources.base as base
    from tests.conftest import sft_recipe

    corpus = project.root / "inputs" / "daily"
    corpus.mkdir()
    _numbered_copies(corpus, sorted(NIKL.rglob("SDRW*.json"))[:6])
    shutil.copy(corpus / "SDRW0000000004.json", corpus / "SDRW0000000004 (1).json")
    monkeypatch.setattr(base, "CHUNK_FILES", 2)
    monkeypatch.setenv("DATAFACTORY_WORKERS", "1")
    project.recipe("talk", sft_recipe(sources={"daily": {"kind": "nikl_dialogue", "path": "inputs/daily"}}))
    with pytest.raises(SourceError, match=r"sources\.daily: .*record key 'SDRW0000000004\.1#0' occurs 2 times"):
        project.factory().build("talk")
    assert not (project.data / "talk").exists()


def test_workers_write_the_source_cache_in_parts_and_the_build_keeps_only_the_columns_it_reads(monkeypatch, project):
    """Each worker writes its chunks' rows, every column, as parts of the source's cache entry (a folder, renamed
    into place): in file order, the rows one process parses. The build holds only the columns its steps read;
    `trace` reads the parts; `gc` removes an entry no version uses; a failed parse leaves no part behind."""
    import datafactory.sources.base as base
    from datafactory.store import Store
    from datafactory.trace import trace
    from tests.conftest import columns_seen, sft_recipe

    corpus = project.root / "inputs" / "daily"
    corpus.mkdir()
    _numbered_copies(corpus, sorted(NIKL.rglob("SDRW*.json")) * 2)
    monkeypatch.setattr(base, "CHUNK_FILES", 9)
    monkeypatch.setenv("DATAFACTORY_WORKERS", "1")
    one = read_source("nikl_dialogue", corpus).frame
    monkeypatch.setenv("DATAFACTORY_WORKERS", "2")
    body = sft_recipe(sources={"daily": {"kind": "nikl_dialogue", "path": "inputs/daily"}})
    body["steps"] += [{"select": {"columns": ["prompt", "completion"]}}]
    project.recipe("talk", body)
    seen = columns_seen(monkeypatch)
    res = project.factory().build("talk")
    assert seen[0] == {"id", "source", "instruction", "output"}
    entry = project.data / ".cache" / "sources" / f"{res.manifest['sources']['daily']['cache_key']}.parquet"
    parts = sorted(p.name for p in entry.iterdir())
    assert parts == [f"{i:06d}.parquet" for i in range(-(-len(list(corpus.iterdir())) // 9))]
    cached = pl.read_parquet(entry)
    assert cached.drop("id", "source").equals(one.drop("id", "source")) and cached["id"].str.starts_with("daily/").all()
    assert not list(entry.parent.glob(".*tmp"))
    row = pl.read_parquet(project.data / "talk" / res.version / "train.parquet")["id"][0]
    assert trace(Store(project.data), "talk", row)["source"]["records"][0]["id"] == row
    # a part a killed worker left half-written (under its temporary name) is not read; a changed step reads the entry
    (entry / ".000001.parquet.dead0000.tmp").write_bytes(b"PAR1 half")
    body["steps"][-1] = {"select": {"columns": ["prompt", "completion", "instruction"]}}
    project.recipe("talk", body)
    changed = project.factory().build("talk")
    assert changed.manifest["sources"]["daily"]["cache_key"] == res.manifest["sources"]["daily"]["cache_key"]
    assert seen[-6] == {"id", "source", "instruction", "output"} and changed.manifest["rows"] == res.manifest["rows"]
    assert trace(Store(project.data), "talk", row)["source"]["records"][0]["id"] == row

    # the source changes: a new entry; gc, keeping one version, removes the old folder
    (corpus / "SDRW0000000000.json").unlink()
    again = project.factory().build("talk")
    assert again.version != res.version and Store(project.data).gc(keep=1) and not entry.exists()
    # a file that fails the build (on_error: fail) leaves neither an entry nor parts
    (corpus / "SDRW0000000001.json").write_text("{not json", "utf-8")
    with pytest.raises(SourceError, match="SDRW0000000001.json"):
        project.factory().build("talk")
    assert [p.name for p in entry.parent.iterdir() if p.suffix != ".json"] == \
        [f"{again.manifest['sources']['daily']['cache_key']}.parquet"]


def test_workers_that_cannot_start_leave_the_work_to_one_process(monkeypatch, tmp_path):
    import concurrent.futures
    import sys

    import datafactory.sources.base as base

    _numbered_copies(tmp_path, sorted(NIKL.rglob("SDRW*.json"))[:6] * 2)
    monkeypatch.setattr(base, "CHUNK_FILES", 3)
    monkeypatch.setenv("DATAFACTORY_WORKERS", "1")
    one = read_source("nikl_dialogue", tmp_path)

    class Broken(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *a, **k):
            raise concurrent.futures.process.BrokenProcessPool("a worker died")

    monkeypatch.setenv("DATAFACTORY_WORKERS", "2")
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Broken)
    got = read_source("nikl_dialogue", tmp_path)
    assert got.frame.equals(one.frame) and any("worker processes failed" in w for w in got.warnings)
    # a main script read from stdin cannot be imported by workers: one process, without trying
    monkeypatch.delenv("DATAFACTORY_WORKERS")
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "<stdin>", raising=False)
    monkeypatch.setattr(base, "PARALLEL_BYTES", 1)
    assert base._workers(base.resolve_inputs(tmp_path, ["SDRW*.json"])) == 1


def test_stopping_workers_drops_the_queued_chunks_and_ends_the_running_ones():
    """A bad file, Ctrl-C or SIGTERM while workers parse: leaving the pool's `with` waited for the chunks queued,
    and cancelling them from the program's thread (as `map` does when interrupted) raced the pool's own thread
    (on Python 3.11 it died on InvalidStateError, and the program hung at exit). `_stop` ends the workers mid-chunk
    and waits for them; chunks that would take an hour are no wait."""
    import threading
    import time

    from datafactory.sources.base import _pool, _stop

    ex = _pool(2)
    futures = [ex.submit(time.sleep, 3600) for _ in range(6)]
    while not any(f.running() for f in futures):
        time.sleep(0.05)
    procs = list(ex._processes.values())
    stopper = threading.Thread(target=_stop, args=(ex,))
    stopper.start()
    stopper.join(120)
    assert not stopper.is_alive() and procs and all(p.exitcode is not None for p in procs)


def test_workers_and_their_polars_threads_follow_the_cores(monkeypatch, tmp_path):
    """One worker per core (at most 8), also where os has no sched_getaffinity (macOS, Windows), and each worker's
    polars gets its share of the cores unless the user set POLARS_MAX_THREADS."""
    import os

    import datafactory.sources.base as base

    (tmp_path / "SDRW1.json").write_text("{}", "utf-8")
    monkeypatch.delenv("DATAFACTORY_WORKERS", raising=False)
    monkeypatch.setattr(base, "PARALLEL_BYTES", 1)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    assert base._cores() == 12 and base._workers(base.resolve_inputs(tmp_path, ["SDRW*.json"])) == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert base._workers(base.resolve_inputs(tmp_path, ["SDRW*.json"])) == 2
    # in the worker processes themselves: polars reads the variable when it is imported, which unpickling a task
    # (or an initializer from a module that imports polars) does first
    import polars as pl

    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 10)
    with base._pool(2) as ex:
        assert {ex.submit(pl.thread_pool_size).result() for _ in range(4)} == {5}
    monkeypatch.setenv("POLARS_MAX_THREADS", "3")  # the user's: kept
    with base._pool(2) as ex:
        assert ex.submit(pl.thread_pool_size).result() == 3


def test_the_workers_forkserver_starts_with_the_build_where_workers_may_run(tmp_path, project):
    """`datafactory build` starts the process workers are forked from before it plans (the main process lists
    files on one core meanwhile), except where no worker would run; a library build does not (a script that builds
    at its top level, unguarded, would build again in it)."""
    import subprocess
    import sys

    from tests.conftest import qa_rows, sft_recipe

    count = ("kids = []\nfor pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n        stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
            "        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n    except OSError:\n        continue\n"
            "    if int(stat[1]) == os.getpid() and b'forkserver' in cmd:\n        kids.append(pid)\n"
            "print(len(kids))\n")
    code = "import os, sys\nfrom datafactory.sources.base import start_forkserver\nstart_forkserver()\n" + count
    script = tmp_path / "probe.py"
    script.write_text(code, "utf-8")
    for workers, started in (("2", "1"), ("1", "0"), ("many", "0")):
        env = {**os.environ, "DATAFACTORY_WORKERS": workers}
        got = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
        assert got.returncode == 0 and got.stdout.split() == [started], (workers, got.stderr)
    stdin = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True,
                           env={**os.environ, "DATAFACTORY_WORKERS": "2"})  # workers could not import this main
    assert stdin.stdout.split() == ["0"], stdin.stderr
    project.jsonl("qa.jsonl", qa_rows(12))
    project.recipe("sft", sft_recipe())
    unguarded = tmp_path / "build_at_top_level.py"
    unguarded.write_text("import os\nfrom datafactory.engine import Factory\n"
                         f"print(Factory({str(project.data)!r}, {str(project.recipes)!r}).build('sft').ref)\n" + count,
                         "utf-8")
    built = subprocess.run([sys.executable, str(unguarded)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "DATAFACTORY_WORKERS": "2"})
    assert built.returncode == 0 and built.stdout.split()[0].startswith("sft@") and built.stdout.split()[1] == "0", \
        built.stderr


def test_the_programs_forkserver_imports_neither_the_cli_nor_polars(tmp_path):
    """The console script's main module (pyproject's entry point) imports nothing heavy: the forkserver imports it
    before forking workers, and with the CLI there (typer, rich) the first worker started later and each carried
    the CLI. polars is not loaded there either, and the forkserver runs no other thread (a fork copies a lock
    another thread holds)."""
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    entry = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    module, function = entry["datafactory"].split(":")
    probe = tmp_path / "datafactory_entry.py"  # as pip writes the console script: the import, then the guarded call
    probe.write_text(
        f"from {module} import {function}\n"
        "if __name__ == '__main__':\n"
        "    import os\n"
        "    from datafactory.sources.base import _pool, start_forkserver\n"
        "    start_forkserver()\n"
        "    with _pool(2) as ex:\n"
        "        loaded = \"[m for m in ('typer', 'rich', 'datafactory.cli') if m in __import__('sys').modules]\"\n"
        "        print(*ex.submit(eval, loaded).result() or ['-'])  # in a worker: what the forkserver had loaded\n"
        "        for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "            try:\n"
        "                cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "                parent = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1]\n"
        "            except OSError:\n"
        "                continue\n"
        "            if int(parent) == os.getpid() and b'forkserver' in cmd:\n"
        "                maps = open(f'/proc/{pid}/maps', 'rb').read()\n"
        "                print(b'polars' in maps, len(os.listdir(f'/proc/{pid}/task')))\n", "utf-8")
    got = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DATAFACTORY_WORKERS": "2"})
    assert got.returncode == 0 and got.stdout.split() == ["-", "False", "1"], (got.stdout, got.stderr)


def test_planning_and_sizing_a_new_folder_make_no_input_file_objects(monkeypatch, tmp_path):
    """A cold build of a folder: the fingerprint finds new files, and the worker count and the units of work are
    sized, from the listing's columns; none of its InputFile objects is made (0.11 s at 100k files)."""
    import datafactory.sources.base as base
    from datafactory.fingerprints import FingerprintCache
    from datafactory.sources.inputs import Listing
    from datafactory.sources.nikl_dialogue import NiklDialogueSource, NiklOptions

    monkeypatch.delenv("DATAFACTORY_WORKERS", raising=False)
    for f in sorted(NIKL.rglob("SDRW2000*.json"))[:5]:
        shutil.copy(f, tmp_path / f.name)
    src = NiklDialogueSource("s", str(tmp_path), NiklOptions())
    files = src.inputs()
    assert isinstance(files, Listing)
    assert src.fingerprint(FingerprintCache(tmp_path / "fp" / "f.msgpack"), defer=True) is None  # new files
    assert base._workers(files) == 1 and [len(c) for c in base._chunks(files)] == [5]
    assert files._files is None


def test_a_folder_listing_and_the_same_files_one_by_one_give_the_same_input_list(tmp_path):
    """The per-file list of a version (name, bytes, digest), from a folder's columns or from InputFile objects;
    a file the fingerprint cache knows unchanged is not hashed again."""
    from datafactory.fingerprints import FingerprintCache
    from datafactory.hashing import file_digest
    from datafactory.sources.inputs import Listing
    from datafactory.sources.nikl_dialogue import NiklDialogueSource, NiklOptions

    for f in sorted(NIKL.rglob("SDRW2000*.json"))[:5]:
        shutil.copy(f, tmp_path / f.name)
    cache = FingerprintCache(tmp_path / "fp" / "fingerprints.msgpack")
    first = tmp_path / "SDRW2000000001.json"
    size, mtime = first.stat().st_size, first.stat().st_mtime_ns
    other = tmp_path / "SDRW2000000002.json"
    assert cache.remember_read([(str(first), size, mtime), (str(other), other.stat().st_size, 0)],
                               {str(first): (size, mtime, "remembered"), str(other): (other.stat().st_size, 1, "old")}) \
        == [(str(other), other.stat().st_size, 0)]  # read with another mtime: not remembered
    columns = NiklDialogueSource("s", str(tmp_path), NiklOptions())
    assert isinstance(columns.inputs(), Listing)
    columns._fp_cache = cache
    objects = NiklDialogueSource("s", str(tmp_path), NiklOptions())
    objects._inputs, objects._fp_cache = list(columns.inputs()), cache
    got = columns.input_list
    assert got == objects.input_list and [n for n, _, _ in got] == sorted(p.name for p in tmp_path.glob("*.json"))
    assert got[0] == ("SDRW2000000001.json", first.stat().st_size, "remembered")
    assert got[1][2] == file_digest(tmp_path / got[1][0])
