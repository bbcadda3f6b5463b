"""The quality and language filters: each rule with a row that breaks it and a hard case that must stay."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from datafactory.errors import DataFactoryError
from datafactory.steps.base import StepContext
from datafactory.steps.language import Language, LanguageParams
from datafactory.steps.quality import Quality, QualityParams, broken_rule

P = QualityParams(columns=["x"])


@pytest.mark.parametrize("text, rule", [
    ("ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ 진짜 웃기다", "jamo_run"),
    ("ㅠㅠㅠㅠㅠㅠㅠㅠㅠㅠㅠㅠㅠ", "jamo_run"),
    ("The weather is lovely today and we should go for a walk.", "hangul_share"),
    ("😀😀😀😀 !!! ??? ~~~ ### 좋아", "symbols"),
    ("좋아요\n좋아요\n좋아요\n싫어요", "duplicate_lines"),
    (" ".join(["정말 좋아요"] * 15), "top_2gram"),
    ("가 나 다 라 마 바 사 아 자 차", "word_length"),
    ("하늘이 파란 이유는 햇빛이 공기 중의 작은 입자에 부딪혀 흩어질 때 파란빛이 더 많이 흩어지기 때문이에요.", None),
    ("ㅋㅋ 맞아요, 저도 그렇게 생각해요!", None),  # a short laugh is Korean chat
    ("네.", None),  # half punctuation, and an answer
    ("Python으로 API를 호출하는 코드를 보여 주세요.", None),  # English words in a Korean request
    ("1. 쌀 2kg\n2. 달걀 10개\n3. 대파 한 단\n4. 두부 한 모", None),  # a list
])
def test_each_rule_and_the_texts_that_stay(text, rule):
    assert broken_rule(text, P) == rule


def frame(texts):
    return pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "source": ["s"] * len(texts),
                         "x": texts, "m": [[{"role": "user", "content": t}] for t in texts]})


def test_the_step_counts_by_rule_and_reads_conversations():
    df = frame(["ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ", "안녕하세요, 반갑습니다. 오늘도 좋은 하루 보내세요."])
    ctx = StepContext(seed=0, work_dir=Path("."))
    out = Quality(QualityParams(columns=["m"])).apply(df, ctx)
    assert out["id"].to_list() == ["r1"] and ctx.dropped == {"quality_jamo_run": 1}
    ctx = StepContext(seed=0, work_dir=Path("."))
    kept = Quality(QualityParams(columns=["x"], max_jamo_run=None, min_hangul_share=None)).apply(df, ctx)
    assert kept.height == 2 and not ctx.dropped  # rules can be turned off


def test_language_keeps_korean_and_mixed_lines_and_counts_the_rest():
    df = frame(["오늘 날씨가 정말 좋네요.", "The weather is nice today.", "今日はいい天気ですね。",
                "한국어와 English가 섞인 문장", "ㅇㅇ"])
    ctx = StepContext(seed=0, work_dir=Path("."))
    out = Language(LanguageParams(columns=["x"])).apply(df, ctx)
    assert out["id"].to_list() == ["r0", "r3", "r4"]  # "ㅇㅇ" is too short to tell: kept
    assert ctx.dropped == {"language_en": 1, "language_ja": 1}
    ctx = StepContext(seed=0, work_dir=Path("."))
    marked = Language(LanguageParams(columns=["m"], action="mark")).apply(df, ctx)
    assert marked["language"].to_list() == ["ko", "en", "ja", "ko", None]


def test_a_missing_column_is_a_clear_error(project):
    project.jsonl("a.jsonl", [{"qid": "1", "text": "안녕하세요"}])
    for step in ({"quality": {"columns": ["txt"]}}, {"language": {"columns": ["txt"]}}):
        name = next(iter(step))
        project.recipe(name, {"sources": {"a": {"kind": "files", "path": "inputs/a.jsonl", "options": {"id": "qid"}}},
                              "steps": [step], "output": {"format": "text"}, "splits": {"train": 1.0}})
        with pytest.raises(DataFactoryError, match=r"steps\[0\]\.%s.*no column 'txt'.*text" % name):
            project.factory().build(name)


def test_a_column_that_is_not_text_is_a_clear_error():
    from datafactory.steps.base import StepError

    df = pl.DataFrame({"id": ["a"], "source": ["s"], "score": [3]})
    for step in (Quality(QualityParams(columns=["score"])), Language(LanguageParams(columns=["score"]))):
        with pytest.raises(StepError, match=f"{step.name}: column 'score' is Int64, not text"):
            step.apply(df, StepContext(seed=0, work_dir=Path(".")))


def test_the_card_says_what_the_filters_dropped(project):
    rows = [{"qid": str(i), "q": q, "a": a} for i, (q, a) in enumerate([
        ("오늘 뭐 먹지?", "김치찌개 어때요? 따뜻하고 든든해요."), ("추천해 줘", "ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ"),
        ("영어로 말해 줘", "Sure, here is my answer in English for you.")])]
    project.jsonl("a.jsonl", rows)
    project.recipe("f", {"sources": {"a": {"kind": "files", "path": "inputs/a.jsonl",
                                           "options": {"id": "qid", "fields": {"prompt": "q", "completion": "a"}}}},
                         "steps": [{"language": {"columns": ["completion"]}}, {"quality": {"columns": ["completion"]}}],
                         "output": {"format": "sft"}, "splits": {"train": 1.0}})
    res = project.factory().build("f")
    card = (project.data / "f" / res.version / "README.md").read_text("utf-8")
    assert "Filters: `steps[0].language` (language, keeping ko; py3langid): ko: 2, en: 1 detected" in card
    assert "`steps[1].quality` (Korean quality heuristics): dropped jamo_run: 1" in card
