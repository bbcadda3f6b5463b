"""Each step on tiny inline frames."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from datafactory.errors import DataFactoryError
from datafactory.steps import STEPS
from datafactory.steps.base import StepContext, StepError
from datafactory.steps.mix import allocate
from datafactory.steps.split import assign_splits


def run(name: str, df: pl.DataFrame, seed: int = 1, **params) -> tuple[pl.DataFrame, StepContext]:
    cls = STEPS[name]
    step = cls(cls.Params.model_validate(params))
    ctx = StepContext(seed=seed, work_dir=Path("/nonexistent"))
    return step.apply(df, ctx), ctx


def frame(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    return pl.DataFrame({"id": [f"s/{i}" for i in range(n)], "source": ["s"] * n, **cols})


def test_filter_length_counts_each_reason():
    df = frame(output=["", "좋아요", "아주 긴 답변입니다 정말로", None])
    out, ctx = run("filter", df, length={"column": "output", "min": 1, "max": 5})
    assert out["output"].to_list() == ["좋아요"]
    assert dict(ctx.dropped) == {"too_short": 2, "too_long": 1}  # the null fails the first rule


def test_filter_expr_sql_and_reason():
    df = frame(intensity=[0.0, 1.2, 2.6], is_immoral=[False, True, True])
    out, ctx = run("filter", df, expr="intensity >= 1.0 AND is_immoral", reason="mild")
    assert out["intensity"].to_list() == [1.2, 2.6]
    assert ctx.dropped == {"mild": 1}


def test_filter_regex_drop_and_keep_hangul():
    df = frame(text=["안녕하세요", "hello", "https://x.y 링크"])
    out, ctx = run("filter", df, regex={"column": "text", "pattern": "https?://"}, reason="url")
    assert out["text"].to_list() == ["안녕하세요", "hello"] and ctx.dropped == {"url": 1}
    out, ctx = run("filter", df, regex={"column": "text", "pattern": r"\p{Hangul}", "keep_matching": True})
    assert out["text"].to_list() == ["안녕하세요", "https://x.y 링크"] and ctx.dropped == {"regex": 1}


@pytest.mark.parametrize("params", [{}, {"expr": "a > 1", "length": {"column": "a"}},
                                    {"regex": {"column": "a", "pattern": "("}}])
def test_filter_rejects_bad_params(params):
    with pytest.raises(ValidationError):
        STEPS["filter"].Params.model_validate(params)


def test_filter_unknown_column_names_it():
    with pytest.raises(StepError, match="no column 'outptu'; did you mean 'output'"):
        run("filter", frame(output=["a"]), length={"column": "outptu", "min": 1})


def test_normalize_composes_jamo_and_cleans_spaces():
    decomposed = unicodedata.normalize("NFD", "한국어")
    assert decomposed != "한국어"
    df = frame(text=[f"  {decomposed}\u200b  문장 \t 입니다 \n 다음 줄 "])
    out, _ = run("normalize", df)
    assert out["text"][0] == "한국어 문장 입니다\n다음 줄"


def test_normalize_makes_windows_line_ends_newlines():
    """CR LF (Windows, Excel's CSV files) and a lone CR were kept: "반가워요\r\n두 줄" tokenizes with a stray CR."""
    out, _ = run("normalize", frame(text=["반가워요\r\n두 줄", "a\rb", "끝\r\n", "\r\n\r\n사이 \r\n 줄"]))
    assert out["text"].to_list() == ["반가워요\n두 줄", "a\nb", "끝", "사이\n줄"]
    kept, _ = run("normalize", frame(text=["a\r\nb"]), remove_control=False)
    assert kept["text"].to_list() == ["a\r\nb"]


def test_normalize_nfc_only_changes_what_nfc_changes():
    """NFC runs only on values with a character outside ASCII and Hangul syllables: the result must be NFC's."""
    values = [unicodedata.normalize("NFD", "한국어"), "한국어 ㅋㅋ", "cafe\u0301", "café", None, "plain text", "",
              "ｆｕｌｌ　ｗｉｄｔｈ", "\u1100\u1161 jamo", "漢字 한자"]
    out, _ = run("normalize", frame(text=values), collapse_spaces=False, remove_control=False, strip=False)
    assert out["text"].to_list() == [None if v is None else unicodedata.normalize("NFC", v) for v in values]


@pytest.mark.parametrize("unicode", ["none", "NFC"])
@pytest.mark.parametrize("options", [{}, {"strip": False}, {"collapse_spaces": False}, {"remove_control": False},
                                     {"remove_control": False, "collapse_spaces": False},
                                     {"remove_control": False, "collapse_spaces": False, "strip": False}])
def test_normalize_rewrites_only_what_its_rules_change_with_the_same_result(options, unicode):
    """Only the values NFC or a rule can change are rewritten (found by one scan); the result is NFC and the rules
    applied to every value."""
    import random

    rng = random.Random(3)
    atoms = ["가", "나", "a", " ", "  ", "\t", "\n", " \n", "\n ", "\u00a0", "\u3000", "\u200b", "\x01", "\ufeff",
             "\r", "\u2028", "ㅋ", ".", "\u1100", "\u1161", "\u11a8", "e\u0301", "\u0301", "\u212b", "○", "ﬁ"]
    values = ["".join(rng.choice(atoms) for _ in range(rng.randint(0, 8))) for _ in range(3000)] + [None, "", "보통 문장."]
    out, _ = run("normalize", frame(text=values, other=values[::-1]), unicode=unicode, **options)  # a thread each
    p = {"remove_control": True, "collapse_spaces": True, "strip": True, **options}
    e = pl.col("text") if unicode == "none" else pl.col("text").str.normalize(unicode)
    if p["remove_control"]:
        e = e.str.replace_all(r"[\u200b-\u200f\u2060\ufeff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "").str.replace_all("\r\n?", "\n")
    if p["collapse_spaces"]:
        e = e.str.replace_all(r"[ \t\u00a0\u3000]{2,}|[\t\u00a0\u3000]", " ").str.replace_all(r" *\n *", "\n")
    if p["strip"]:
        e = e.str.strip_chars()
    assert out["text"].to_list() == pl.DataFrame({"text": values}).select(e)["text"].to_list()
    assert out["other"].to_list() == pl.DataFrame({"text": values[::-1]}).select(e)["text"].to_list()


def test_normalize_leaves_lineage_alone():
    df = frame(text=["a"])
    out, _ = run("normalize", df)
    assert out["id"].to_list() == ["s/0"]


@pytest.mark.parametrize("hash_expr", [None, "first column only", "constant"])
def test_dedup_keeps_exactly_the_first_of_equal_rows_even_when_hashes_collide(hash_expr):
    import random

    from datafactory.steps.dedup import first_distinct

    rng = random.Random(5)
    keys = pl.DataFrame({"a": [rng.choice(["x", "y", "z", None]) for _ in range(2000)],
                         "b": [rng.choice(["1", "2", "3", "4", None]) for _ in range(2000)]})
    expr = {None: None, "first column only": pl.col("a").hash(), "constant": pl.int_range(pl.len()) * 0}[hash_expr]
    got = first_distinct(keys, expr)
    assert got.to_list() == keys.select(pl.struct(pl.all()).is_first_distinct())[:, 0].to_list()
    assert got.sum() == keys.unique().height


def test_dedup_exact_and_ignoring_space_and_case():
    df = frame(q=["같은 질문", "같은 질문", "같은  질문", "Other", "other"])
    out, ctx = run("dedup", df, columns=["q"])
    assert out.height == 4 and ctx.dropped == {"duplicate": 1}
    out, ctx = run("dedup", df, columns=["q"], ignore_space_and_case=True)
    assert out["q"].to_list() == ["같은 질문", "Other"] and ctx.dropped == {"duplicate": 3}


def test_sample_is_seeded_and_independent_of_row_order():
    df = frame(x=list(range(100)))
    a, ctx = run("sample", df, n=10, seed=3)
    b, _ = run("sample", df.reverse(), n=10, seed=3)
    c, _ = run("sample", df, n=10, seed=4)
    assert sorted(a["id"]) == sorted(b["id"]) and sorted(a["id"]) != sorted(c["id"])
    assert ctx.dropped == {"sampled_out": 90}
    frac, _ = run("sample", df, fraction=0.25)
    assert frac.height == 25


def test_mix_weights_to_total():
    df = pl.DataFrame({"id": [f"r{i}" for i in range(100)], "source": ["daily"] * 60 + ["hate"] * 30 + ["other"] * 10})
    out, ctx = run("mix", df, total=45, weights={"daily": 2, "hate": 1})
    counts = dict(out.group_by("source").len().iter_rows())
    assert counts == {"daily": 30, "hate": 15}
    assert ctx.dropped == {"mix_surplus": 45, "not_in_mix": 10}


def test_mix_short_group_is_an_error_unless_allowed():
    df = pl.DataFrame({"id": list("abcde"), "source": ["daily"] * 4 + ["hate"]})
    with pytest.raises(StepError, match="group 'hate' has 1 rows but the mix wants 2"):
        run("mix", df, total=6, weights={"daily": 2, "hate": 1})
    out, _ = run("mix", df, total=6, weights={"daily": 2, "hate": 1}, allow_short=True)
    assert out.height == 5


def test_allocate_is_exact():
    assert allocate(1500, {"daily": 2, "hate": 1}) == {"daily": 1000, "hate": 500}
    assert sum(allocate(10, {"a": 1, "b": 1, "c": 1}).values()) == 10


def test_split_fractions_counts_and_stability():
    ranks = [i / 100 for i in range(100)]
    names = assign_splits(ranks, {"train": 0.9, "test": 0.1})
    assert names.count("train") == 90 and names.count("test") == 10
    names = assign_splits(ranks, {"train": 1.0, "test": 40})
    assert names.count("test") == 40
    df = frame(x=list(range(200)))
    a, _ = run("split", df, splits={"train": 0.8, "test": 0.2})
    bigger = pl.concat([df, pl.DataFrame({"id": [f"new/{i}" for i in range(50)], "source": ["s"] * 50, "x": list(range(50))})])
    b, _ = run("split", bigger, splits={"train": 0.8, "test": 0.2})
    moved = a.join(b, on="id").filter(pl.col("split") != pl.col("split_right"))
    assert moved.height == 0  # a row's split depends on its id alone


def test_template_kullm_with_and_without_input():
    df = frame(instruction=["요약해 주세요", "인사해 주세요"], input=["긴 글", None])
    out, ctx = run("template", df)
    with_input, no_input = out["prompt"].to_list()
    assert with_input.endswith("### 명령어:\n요약해 주세요\n\n### 입력:\n긴 글\n\n### 응답:\n")
    assert no_input == "아래는 작업을 설명하는 명령어입니다. 요청을 적절히 완료하는 응답을 작성하세요.\n\n### 명령어:\n인사해 주세요\n\n### 응답:\n"
    assert ctx.info["template"]["name"] == "kullm" and ctx.info["template"]["response_split"] == "### 응답:"


def test_template_inline_text():
    out, _ = run("template", frame(q=["질문"]), text="Human: {q}\nAssistant:", output="p")
    assert out["p"][0] == "Human: 질문\nAssistant:"


def test_template_identity_changes_with_template():
    a = STEPS["template"](STEPS["template"].Params.model_validate({}))
    b = STEPS["template"](STEPS["template"].Params.model_validate({"text": "{instruction}"}))
    assert a.identity() != b.identity()


def test_select_and_rename_keep_lineage():
    df = frame(a=[1], b=[2])
    out, _ = run("select", df, columns=["b"])
    assert out.columns == ["id", "source", "b"]
    out, _ = run("rename", df, columns={"a": "completion"})
    assert "completion" in out.columns
    with pytest.raises(StepError, match="lineage"):
        run("rename", df, columns={"id": "x"})


def test_normalize_cleans_each_message_of_a_conversation_column():
    history = [[{"role": "user", "content": " 밥  먹었어?\u200b"}, {"role": "assistant", "content": "응,\r\n먹었지 "}], [], None]
    df = pl.DataFrame({"id": ["a", "b", "c"], "source": ["s"] * 3, "instruction": [" 뭐 먹었어? ", "x", "y"],
                       "history": history})
    out, _ = run("normalize", df)  # every text and conversation column by default
    assert out["instruction"].to_list() == ["뭐 먹었어?", "x", "y"]
    assert out["history"].to_list() == [[{"role": "user", "content": "밥 먹었어?"},
                                         {"role": "assistant", "content": "응,\n먹었지"}], [], None]
    assert run("normalize", df, columns=["instruction"])[0]["history"].to_list() == history


CONVERSATIONS = [
    [],
    [{"role": "user", "content": "밥이랑 달걀로 뭘 만들 수 있을까요?"}, {"role": "assistant", "content": "채소는 좀 있나요?"}],
    [{"role": "system", "content": "친절하게 답하세요."}, {"role": "assistant", "content": "무엇을 도와드릴까요?"}],
    [{"role": "user", "content": "줄바꿈이\n있는 말"}, {"role": "assistant", "content": "{중괄호}와 \"따옴표\" \\ 역슬래시"}],
]


def test_template_renders_the_earlier_turns_exactly_as_its_chat_template_does():
    """The text template's rows (polars) and the chat template a trained model carries (Jinja) are the same bytes,
    for conversations with and without earlier turns; the shipped kullm.jinja is that chat template."""
    from datafactory.templates import TEMPLATE_DIR, load_template
    from datafactory.templates.chat import chat_template, render

    tpl = load_template("kullm")
    jinja = chat_template(tpl)
    assert (TEMPLATE_DIR / "kullm.jinja").read_text("utf-8") == jinja
    df = pl.DataFrame({"id": [f"r{i}" for i in range(4)], "source": ["s"] * 4, "instruction": ["대파만 조금 있어요."] * 4,
                       "history": CONVERSATIONS})
    out, ctx = run("template", df)
    for turns, prompt in zip(CONVERSATIONS, out["prompt"]):
        assert prompt == render(jinja, [*turns, {"role": "user", "content": "대파만 조금 있어요."}])
    assert out["prompt"][0] == tpl["prompt_no_input"].format(instruction="대파만 조금 있어요.")
    assert "### 입력:\n사용자: 밥이랑 달걀로 뭘 만들 수 있을까요?\n어시스턴트: 채소는 좀 있나요?\n\n### 응답:\n" in out["prompt"][1]
    info = ctx.info["template"]
    assert info["chat_template"] == jinja and info["with_history"] == 3 and info["used"] == {"prompt_input": 3,
                                                                                             "prompt_no_input": 1}
    # an answer after the prompt ends with the EOS: what SFT trains on
    full = render(jinja, [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요!"}],
                  eos_token="<|endoftext|>")
    assert full == tpl["prompt_no_input"].format(instruction="안녕?") + "안녕하세요!<|endoftext|>"


def test_a_row_with_its_own_input_and_earlier_turns_has_both_in_the_input_slot():
    df = pl.DataFrame({"id": ["a", "b"], "source": ["s", "s"], "instruction": ["요약해 줘", "요약해 줘"],
                       "input": ["긴 글", ""], "history": [CONVERSATIONS[1], []]})
    out, _ = run("template", df)
    assert "### 입력:\n사용자: 밥이랑 달걀로 뭘 만들 수 있을까요?\n어시스턴트: 채소는 좀 있나요?\n\n긴 글\n\n### 응답:" in out["prompt"][0]
    assert "### 입력:" not in out["prompt"][1]


def test_chat_templates_from_a_file_or_a_model_folder_and_the_text_template_without_an_input_slot(tmp_path):
    jinja = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
             "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    (tmp_path / "chat.jinja").write_text(jinja, "utf-8")
    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": jinja}), "utf-8")
    df = pl.DataFrame({"id": ["a"], "source": ["s"], "instruction": ["대파만 조금 있어요."], "history": [CONVERSATIONS[1]]})
    want = ("<|user|>밥이랑 달걀로 뭘 만들 수 있을까요?\n<|assistant|>채소는 좀 있나요?\n<|user|>대파만 조금 있어요.\n"
            "<|assistant|>")
    for ref in (str(tmp_path / "chat.jinja"), str(model)):
        out, ctx = run("template", df, chat_template=ref)
        assert out["prompt"][0] == want and ctx.info["template"]["chat_template"] == jinja
    with pytest.raises(DataFactoryError, match="no chat template"):
        run("template", df, chat_template=str(tmp_path))
    with pytest.raises(StepError, match="no input slot"):
        run("template", df, text="질문: {instruction}\n답:")
