"""The LLM steps with a canned LLM: requests built right, good and malformed answers parsed, failures counted
(never a None row), and pair's rules."""
from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from datafactory.llm.types import Answer, Failure
from datafactory.steps import STEPS
from datafactory.steps.base import StepContext, StepError
from datafactory.steps.judge import score_of
from datafactory.steps.pair import pair_key


class CannedLLM:
    """Answers each request with ``answer(request)`` (text, an Answer or a Failure); records the requests."""

    dry_run = False  # answers, not a plan's stand-ins

    def __init__(self, answer, logprobs: bool = True):
        self.answer, self.logprobs, self.requests = answer, logprobs, []

    def supports_logprobs(self, role):
        return self.logprobs

    def complete(self, requests, batch=False):
        self.requests += requests
        out = []
        for i, r in enumerate(requests):
            a = self.answer(r)
            if isinstance(a, str):
                a = Answer([a] * r.n, {"input_tokens": 1, "output_tokens": 1}, 0.0, "m")
            a.key = a.key or f"k{len(self.requests) - len(requests) + i}"
            out.append(a)
        return out


def run(name: str, df: pl.DataFrame, llm=None, **params):
    cls = STEPS[name]
    step = cls(cls.Params.model_validate(params))
    ctx = StepContext(seed=1, work_dir=Path("/nonexistent"), llm=llm)
    return step.apply(df, ctx), ctx


def frame(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    return pl.DataFrame({"id": [f"s/{i}" for i in range(n)], "source": ["s"] * n, **cols})


# -- respond --------------------------------------------------------------------------------------------------
def test_respond_explodes_one_row_per_role_and_answer():
    llm = CannedLLM(lambda r: f"{r.role} 답: {r.messages[-1]['content']}")
    df = frame(instruction=["안녕?", "뭐 해?"], prompt=["P1", "P2"])
    out, ctx = run("respond", df, llm, roles=["teacher", "sft"], per_role={"sft": {"input": "prompt", "prompt": "plain"}})
    assert out.height == 4 and set(out["id"]) == {"s/0/teacher/0", "s/1/teacher/0", "s/0/sft/0", "s/1/sft/0"}
    assert out.filter(pl.col("id") == "s/0/sft/0")["response"][0] == "sft 답: P1"  # the plain prompt: the input as is
    teacher = llm.requests[0]
    assert teacher.messages[0]["role"] == "system" and teacher.messages[-1]["content"] == "안녕?"
    assert llm.requests[2].messages == [{"role": "user", "content": "P1"}]
    assert llm.requests[2].meta["input"] == "안녕?"  # the demo finds answers by the instruction, whatever the prompt
    assert out["prompt_id"].to_list()[:2] == ["s/0", "s/1"] and out["llm_calls"].to_list()[0] == ["k0"]


def test_respond_history_goes_before_the_input():
    llm = CannedLLM(lambda r: "네")
    df = frame(instruction=["그럼 어떻게 해?"], history=[[{"role": "user", "content": "개가 짖어"}, {"role": "assistant", "content": "저런"}]])
    run("respond", df, llm, history="history")
    assert [m["role"] for m in llm.requests[0].messages] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize("bad,reason", [(Failure("content_policy"), "respond_content_policy"),
                                        ("   ", "respond_empty_answer")])
def test_respond_failures_are_dropped_and_counted_or_fail(bad, reason):
    llm = CannedLLM(lambda r: bad if "둘" in r.messages[-1]["content"] else "좋아요")
    df = frame(instruction=["하나", "둘"])
    out, ctx = run("respond", df, llm, explode=False, output="output")
    assert out["instruction"].to_list() == ["하나"] and out["output"].null_count() == 0
    assert ctx.dropped == {reason: 1}
    with pytest.raises(StepError, match=r"row 's/1': .* \(1 rows failed\)"):
        run("respond", df, llm, explode=False, on_failure="fail")


# -- translate ------------------------------------------------------------------------------------------------
def test_translate_keeps_turns_and_english():
    ko = {"Hi": "안녕하세요", "Hello!": "반가워요!", "Bye": "잘 가요"}
    llm = CannedLLM(lambda r: ko[r.messages[-1]["content"]])
    df = frame(question=["Bye"], history=[[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]])
    out, _ = run("translate", df, llm, columns=["question"], turns=["history"])
    assert out["question"][0] == "잘 가요" and out["question_en"][0] == "Bye"
    assert out["history"][0].to_list() == [{"role": "user", "content": "안녕하세요"}, {"role": "assistant", "content": "반가워요!"}]
    assert len(out["llm_calls"][0]) == 3


def test_translate_drops_a_row_with_any_failed_text():
    llm = CannedLLM(lambda r: Failure("context_length") if r.messages[-1]["content"] == "long" else "짧다")
    out, ctx = run("translate", frame(q=["short", "long"], a=["x", "y"]), llm, columns=["q", "a"])
    assert out["q"].to_list() == ["짧다"] and ctx.dropped == {"translate_context_length": 1}


# -- judge ------------------------------------------------------------------------------------------------------
def lp(**probs) -> list[dict]:
    return [{"token": t, "logprob": math.log(p)} for t, p in probs.items()]


@pytest.mark.parametrize("top,expected", [
    (lp(**{"4": 0.6, "5": 0.3, "3": 0.1}), 4.2),
    (lp(**{" 5": 0.5, "5": 0.3, "Hi": 0.2}), 5.0),     # " 5" and "5" are both 5; non-digits left out, renormalised
    (lp(**{"1": 0.5, "2": 0.5}), 1.5),
])
def test_geval_score_is_probability_weighted(top, expected):
    score, dist = score_of(Answer(["4"], {}, 0, top_logprobs=[top]), "logprobs", 0.5)
    assert score == pytest.approx(expected) and sum(dist) == pytest.approx(1.0)


@pytest.mark.parametrize("answer,result", [
    (Answer(["x"], {}, 0, top_logprobs=[lp(**{"The": 0.7, "4": 0.2})]), "low_score_mass"),
    (Answer(["4", "5", "4"], {}, 0), 13 / 3),          # samples averaged
    (Answer(["4점", "점수는 5", "x"], {}, 0), 4.0),      # only parseable samples count
    (Answer(["", "좋음", "10"], {}, 0), "unparseable_score"),   # never a 0
    (Failure("content_policy"), "content_policy"),
    (Answer(["4"], {}, 0, top_logprobs=[[{"token": "4", "logprob": None}, {"token": "5", "logprob": float("-inf")},
                                         {"token": "3", "logprob": float("nan")}, {"token": "4", "logprob": -0.1}]]),
     4.0),                                              # null, -inf and NaN log-probabilities count for nothing
])
def test_geval_malformed_answers_are_counted_failures(answer, result):
    got = score_of(answer, "sample" if not getattr(answer, "top_logprobs", None) else "logprobs", 0.5)
    assert (got == result) if isinstance(result, str) else (got[0] == pytest.approx(result))


def test_judge_asks_each_criterion_and_totals():
    llm = CannedLLM(lambda r: Answer(["5"], {}, 0, top_logprobs=[lp(**{"5": 0.9, "4": 0.1})]))
    df = frame(instruction=["안녕"], response=["반가워요"])
    out, _ = run("judge", df, llm, data_type="translation")
    assert len(llm.requests) == 7 and all(r.params["max_tokens"] == 1 and r.params["top_logprobs"] == 20 for r in llm.requests)
    assert "- 진실성:" in llm.requests[-1].messages[0]["content"].splitlines()[-1]
    assert out["score_total"][0] == pytest.approx(7 * 4.9)
    assert [s["criterion"] for s in out["scores"][0]][-1] == "truthfulness"


def test_judge_samples_where_the_endpoint_has_no_logprobs():
    llm = CannedLLM(lambda r: Answer(["4", "5"] * 5, {}, 0), logprobs=False)
    out, _ = run("judge", frame(instruction=["a"], response=["b"]), llm)
    assert llm.requests[0].n == 10 and llm.requests[0].params["temperature"] == 1.0
    assert llm.requests[0].params["max_tokens"] == 3
    assert out["score_total"][0] == pytest.approx(6 * 4.5)
    # a reasoning judge thinks first: room for it (its thinking is left out by the client, see test_client)
    llm = CannedLLM(lambda r: Answer(["4"] * 10, {}, 0), logprobs=False)
    run("judge", frame(instruction=["a"], response=["b"]), llm, method="sample", sample_max_tokens=2048)
    assert llm.requests[0].params["max_tokens"] == 2048


def test_hatespeech_judge_uses_its_own_harmlessness():
    llm = CannedLLM(lambda r: Answer(["3"], {}, 0, top_logprobs=[lp(**{"3": 1.0})]))
    run("judge", frame(instruction=["a"], response=["b"]), llm, data_type="hatespeech")
    harm = next(r for r in llm.requests if r.meta["criterion"] == "harmlessness").messages[0]["content"]
    assert "호응하지 않고" in harm


# -- pair -------------------------------------------------------------------------------------------------------
def answers(*rows) -> pl.DataFrame:
    """rows of (prompt_id, role, response, score_total)."""
    return pl.DataFrame({"id": [f"{p}/{r}" for p, r, _, _ in rows], "source": ["s"] * len(rows),
                         "prompt_id": [p for p, *_ in rows], "response_role": [r for _, r, _, _ in rows],
                         "response": [x for _, _, x, _ in rows], "score_total": [float(t) if t is not None else None for *_, t in rows],
                         "instruction": [f"질문 {p}" for p, *_ in rows], "prompt": [f"P {p}" for p, *_ in rows]})


def test_pair_by_score_applies_the_seed_rules():
    df = answers(("a", "teacher", "좋은 답", 28), ("a", "sft", "약한 답", 15),
                 ("b", "teacher", "딱딱한 답", 19), ("b", "sft", "친근한 답", 25),
                 ("c", "teacher", "같음1", 24), ("c", "sft", "같음2", 24),
                 ("d", "teacher", "나쁨1", 16), ("d", "sft", "나쁨2", 13),
                 ("e", "teacher", "혼자", 20))
    out, ctx = run("pair", df, by="score", min_total=20)
    assert out["id"].to_list() == ["a", "b"]
    assert out["chosen"].to_list() == ["좋은 답", "친근한 답"] and out["chosen_role"].to_list() == ["teacher", "sft"]
    assert out["prompt"].to_list() == ["P a", "P b"] and set(out["label_source"]) == {"judge"}
    assert ctx.dropped == {"answers_merged_into_a_pair": 2, "tie": 1, "both_low": 1, "answers_of_dropped_pairs": 2,
                           "single_answer": 1}  # ties and both low counted as pairs


def test_pair_by_role():
    df = answers(("a", "teacher", "T", None), ("a", "sft", "S", None), ("b", "sft", "S2", None))
    out, ctx = run("pair", df, by="role", chosen="teacher", rejected="sft")
    assert out.select("chosen", "rejected").row(0) == ("T", "S") and ctx.dropped["single_answer"] == 1


def test_human_labels_win_over_the_judge(tmp_path):
    labels = tmp_path / "labels.jsonl"
    # the judge prefers "좋은 답"; the human (with the answers in the other order) prefers "약한 답"
    labels.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"prompt": "질문 a", "response_a": "약한 답", "response_b": "좋은 답", "winner": "a"},
        {"prompt": "질문 b", "response_a": "B1", "response_b": "B2", "winner": "tie"}]), "utf-8")
    df = answers(("a", "teacher", "좋은 답", 28), ("a", "sft", "약한 답", 15), ("b", "teacher", "B1", 25), ("b", "sft", "B2", 20))
    out, ctx = run("pair", df, by="score", labels=str(labels))
    assert out.select("chosen", "rejected", "label_source").row(0) == ("약한 답", "좋은 답", "human")
    assert ctx.dropped["human_tie"] == 1  # one pair
    # the judge chose "좋은 답" in pair a, the human the other: one comparison, no agreement
    assert ctx.info["labels"]["s"] == {"human_labelled": 2, "compared_with_judge": 1, "agree_with_judge": 0, "human": 1}
    table = ctx.tables["pairs"]
    assert table["outcome"].to_list() == ["kept", "human_tie"] and table["human"].to_list() == ["winner", "tie"]
    assert pair_key("q", "x", "y") == pair_key("q ", "y", "x")


# -- evolve and self_instruct -----------------------------------------------------------------------------------
@pytest.mark.parametrize("answer,reason", [("광합성을 비유 두 개로 설명하세요.", None),
                                           ("광합성을 설명하세요.", "evolve_unchanged"),
                                           ("#다시 쓴 지시문#: 광합성을 자세히", "evolve_prompt_leak"),
                                           ("짧다", "evolve_too_short"),
                                           ("", "evolve_empty_answer")])
def test_evolve_eliminates_failed_evolutions(answer, reason):
    llm = CannedLLM(lambda r: answer)
    out, ctx = run("evolve", frame(instruction=["광합성을 설명하세요."]), llm, methods=["constraints"])
    assert "제약 조건이나 요구 사항을 하나 더 추가하세요" in llm.requests[0].messages[0]["content"]
    if reason is None:
        assert out.select("instruction", "instruction_before", "evolution").row(0) == (answer, "광합성을 설명하세요.", "constraints")
    else:
        assert out.height == 0 and ctx.dropped == {reason: 1}


def test_evolve_spreads_methods_by_a_stable_hash():
    llm = CannedLLM(lambda r: r.meta["input"] + " 세 가지 이유를 들어")
    df = frame(instruction=[f"질문 {i}번에 답하세요." for i in range(40)])
    out, _ = run("evolve", df, llm)
    again, _ = run("evolve", df, CannedLLM(lambda r: "x" * 10))
    assert set(out["evolution"]) == {"constraints", "deepen", "concretize", "reasoning", "breadth"}
    assert out["evolution"].to_list() == again["evolution"].to_list()


def test_self_instruct_keeps_novel_instructions_only():
    seeds = ["여름 휴가 계획을 세워 주세요.", "다음 문장을 존댓말로 바꾸세요.", "좋은 습관 세 가지를 알려 주세요."]

    def answer(r):  # the model repeats a seed, proposes one twice, needs an image, then two good ones
        return ("다음 문장을 존댓말로 바꾸세요.\n2. 고양이를 처음 키우는 사람에게 조언해 주세요.\n"
                "3. 고양이를 처음 키우는 사람에게 조언을 해 주세요.\n4. 이 사진 속 음식을 설명하세요.\n"
                "5. 한국의 사계절을 짧은 시로 표현하세요.")
    llm = CannedLLM(answer)
    out, ctx = run("self_instruct", frame(instruction=seeds), llm, batches=1, examples=2, generate=5)
    assert out["instruction"].to_list() == ["고양이를 처음 키우는 사람에게 조언해 주세요.", "한국의 사계절을 짧은 시로 표현하세요."]
    assert ctx.dropped == {"self_instruct_near_duplicate": 2, "self_instruct_needs_media": 1, "seed_task": 3}
    assert out["id"].to_list() == ["s/self-0-1", "s/self-0-4"]
    shown = llm.requests[0].messages[0]["content"]
    assert shown.count("\n1. ") == 1 and "새로운 한국어 지시문 5개" in shown


def test_rouge_l_on_characters():
    from datafactory.steps.self_instruct import parse_list, rouge_l

    assert rouge_l("고양이를 키우세요", "고양이를 키우세요") == 1.0 and rouge_l("가나", "다라") == 0.0
    assert parse_list(" 첫째\n2) 둘째\n설명 줄\n3. 셋째") == ["첫째", "둘째", "셋째"]


def test_string_lists_give_what_polars_gives_from_python_lists():
    """`llm_calls` is built without polars' per-row path (2.8 s for 100,000 rows): the same column every way."""
    import polars as pl

    from datafactory.steps.llm import string_lists

    for lists in ([["k1"], ["k2"]], [["a", "b"], ["c", "d"]], [[], ["a", "b"], []], [[]], [], [["한글 키"], []]):
        got = string_lists("llm_calls", lists)
        assert got.equals(pl.Series("llm_calls", lists, dtype=pl.List(pl.String))), lists
        assert got.dtype == pl.List(pl.String) and got.to_list() == lists
