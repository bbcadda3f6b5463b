"""Personal data: the detector on the labelled set (every kind, positives and hard negatives), the `pii` step on text
and message columns, and a build over a `files` source planted with personal data that publishes none of it."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datafactory.errors import DataFactoryError
from datafactory.pii import KINDS, PLACEHOLDER, find, mask
from tests.conftest import REPO

SET = [json.loads(line) for line in (REPO / "tests" / "data" / "pii_labelled.jsonl").read_text("utf-8").splitlines()]


def spans(text, **kw):
    return [(k, text[s:e]) for s, e, k in find(text, **kw)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_labelled_positive_of_a_kind_is_found_whole(kind):
    rows = [r for r in SET if any(s["kind"] == kind for s in r["spans"])]
    assert len(rows) >= 10, kind
    for r in rows:
        assert sorted(spans(r["text"])) == sorted((s["kind"], s["text"]) for s in r["spans"]), r["text"]


def test_no_hard_negative_is_masked():
    negatives = [r["text"] for r in SET if r["group"] == "negative"]
    assert len(negatives) >= 300 and sum(r["group"] == "positive" for r in SET) >= 300
    wrong = [(t, spans(t)) for t in negatives if spans(t)]
    assert wrong == []


@pytest.mark.parametrize("text, expected", [
    ("주민번호 900101-1234568 입니다", [("rrn", "900101-1234568")]),  # check digit right
    ("일련번호 9001011234567", []),  # 13 digits, a real date, the check digit wrong: not one
    ("주민번호 901301-1234567", []),  # no 13th month
    ("주민등록번호 900101-1******", [("rrn", "900101-1******")]),  # a masked tail still says who
    ("외국인등록번호 900101-5234565", [("frn", "900101-5234565")]),
    ("카드 4111 1111 1111 1111", [("card", "4111 1111 1111 1111")]),
    ("카드 4111 1111 1111 1112", []),  # Luhn's check fails
    ("주문번호 4111111111111111 발송", []),  # 16 digits in a row, no card named: an order number as often as not
    ("전화: 02)123-4567", [("phone", "02)123-4567")]),
    ("대표번호 1588-1234", [("phone", "1588-1234")]),
    ("1588-1234년", []),
    ("&name&님 &tel-num&으로 연락 주세요", []),  # the NIKL corpus's pseudonym tokens
    ("IP 10.0.0.256은 없는 주소", []),
    ("kim@example.com로 보내요", [("email", "kim@example.com")]),  # Hangul right after it
])
def test_documented_cases(text, expected):
    assert spans(text) == expected


def test_business_numbers_kept_when_configured_and_kinds_chosen():
    assert spans("고객센터 1588-1234", keep_business_numbers=True) == []
    assert spans("010-1234-5678, kim@example.com", kinds=("email",)) == [("email", "kim@example.com")]
    masked, counts = mask("연락처 010-1234-5678, 메일 kim@example.com")
    assert masked == "연락처 <전화번호>, 메일 <이메일>" and counts == {"phone": 1, "email": 1}
    assert set(PLACEHOLDER) == set(KINDS)


PLANTED = [
    {"qid": "p1", "question": "제 번호는 010-2345-6789이고 주민번호는 900101-1234568입니다. 확인해 주세요.",
     "answer": "네, 서울특별시 강남구 테헤란로 152로 안내문을 보내 드릴게요.", "turns": [
         {"role": "user", "content": "국민은행 123-456-789012로 환불해 주세요"}, {"role": "assistant", "content": "알겠습니다."}]},
    {"qid": "p2", "question": "카드 4111-1111-1111-1111 결제가 안 돼요. 메일은 hong.gildong@example.com 이에요.",
     "answer": "사업자등록번호 220-81-62517로 영수증을 발급했습니다.", "turns": []},
    {"qid": "p3", "question": "여권번호 M12345678로 예약했는데 운전면허 11-12-345678-90도 필요한가요?",
     "answer": "접속 IP 203.0.113.7에서 확인했습니다. 외국인등록번호 900101-5234565도 확인했어요.", "turns": []},
    {"qid": "p4", "question": "오늘 날씨 어때요?", "answer": "맑고 따뜻해요. 2024-05-01 14:30 기준 12,000원 할인도 있어요.",
     "turns": []},
]
SECRETS = ["010-2345-6789", "900101-1234568", "테헤란로 152", "123-456-789012", "4111-1111-1111-1111",
           "hong.gildong@example.com", "220-81-62517", "M12345678", "11-12-345678-90", "203.0.113.7", "900101-5234565",
           "010-9876-5432"]


def test_a_build_over_a_files_source_planted_with_personal_data_publishes_none(project):
    """Split files, the card (its examples), the manifest and the quarantine (a broken line holding a phone
    number) of a version hold none of the planted values; the placeholders and the counts by kind are there."""
    path = project.jsonl("chats.jsonl", PLANTED)
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"qid": "broken", "question": "전화 010-9876-5432 주세요", \n')  # not JSON: quarantined
    project.recipe("safe", {
        "sources": {"c": {"kind": "files", "path": "inputs/chats.jsonl", "on_error": "quarantine",
                          "options": {"id": "qid", "fields": {"instruction": "question", "output": "answer",
                                                              "turns": "turns"}}}},
        "steps": [{"pii": {"columns": ["instruction", "output", "turns"]}},
                  {"template": {}}, {"rename": {"columns": {"output": "completion"}}}],
        "output": {"format": "sft"}, "splits": {"train": 0.5, "test": 0.5}, "seed": 1})
    res = project.factory().build("safe")
    folder = project.data / "safe" / res.version
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    texts = [(folder / "README.md").read_text("utf-8"), json.dumps(manifest, ensure_ascii=False)]
    for f in folder.rglob("*.parquet"):
        texts.append(json.dumps(pl.read_parquet(f).to_dicts(), ensure_ascii=False, default=str))
    quarantined = list(folder.glob("quarantine/*.jsonl"))
    assert quarantined, "the broken line is kept (masked) in the version's quarantine"
    texts += [q.read_text("utf-8") for q in quarantined]
    everything = "\n".join(texts)
    for secret in SECRETS:
        assert secret not in everything, secret
    assert "<전화번호>" in everything and "<주민등록번호>" in everything and "<주소>" in everything
    info = next(s["info"]["pii"] for s in manifest["steps"] if s["step"] == "pii")
    assert info["found"] == {"account": 1, "address": 1, "brn": 1, "card": 1, "driver": 1, "email": 1, "frn": 1,
                             "ip": 1, "passport": 1, "phone": 1, "rrn": 1}
    assert info["rows"] == 3 and info["by_column"]["turns:account"] == 1
    card = (folder / "README.md").read_text("utf-8")
    assert "## Data safety" in card and "전화번호 (phone): 1" in card
    assert "12,000원" in everything  # prices and dates stay


def test_drop_and_bad_columns_are_clear(project):
    project.jsonl("chats.jsonl", PLANTED)
    base = {"sources": {"c": {"kind": "files", "path": "inputs/chats.jsonl",
                              "options": {"id": "qid", "fields": {"instruction": "question", "output": "answer"}}}},
            "output": {"format": "sft"}, "splits": {"train": 1.0}, "seed": 1}
    project.recipe("dropped", {**base, "steps": [{"pii": {"columns": ["instruction", "output"], "action": "drop"}},
                                                {"rename": {"columns": {"instruction": "prompt", "output": "completion"}}}]})
    res = project.factory().build("dropped")
    manifest = json.loads((project.data / "dropped" / res.version / "manifest.json").read_text("utf-8"))
    assert manifest["rows"] == 1 and next(s for s in manifest["steps"] if s["step"] == "pii")["dropped"] == {"pii": 3}
    project.recipe("typo", {**base, "steps": [{"pii": {"columns": ["instrution"]}}]})
    with pytest.raises(DataFactoryError, match=r"steps\[0\]\.pii.*no column 'instrution'.*instruction"):
        project.factory().build("typo")
    project.recipe("kind", {**base, "steps": [{"pii": {"columns": ["instruction"], "kinds": ["ssn"]}}]})
    with pytest.raises(DataFactoryError, match="no kind 'ssn'.*rrn"):
        project.factory().build("kind")


def test_a_column_that_is_not_text_is_a_clear_error():
    from datafactory.steps.base import StepContext, StepError
    from datafactory.steps.pii import Pii, PiiParams

    df = pl.DataFrame({"id": ["a"], "source": ["s"], "score": [3]})
    with pytest.raises(StepError, match="column 'score' is Int64, not text or a list of messages"):
        Pii(PiiParams(columns=["score"])).apply(df, StepContext(seed=0, work_dir=Path(".")))
