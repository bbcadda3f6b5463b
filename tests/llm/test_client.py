"""The LLM client against a real HTTP fake: answers stored as they arrive, cache hits free, transient failures
retried, permanent ones stored once, the budget respected, replay misses named, no secret written."""
from __future__ import annotations

import asyncio

import pytest

from datafactory.errors import DataFactoryError
from datafactory.llm.client import Budget, BudgetReached, LLMClient
from datafactory.llm.limiter import Limiter, retry_after
from datafactory.llm.profiles import load_profile
from datafactory.llm.store import ResponseStore
from datafactory.llm.types import Answer, Failure, Request
from tests.llm.conftest import write_profile


def ask(n: int, role: str = "teacher", start: int = 0, **params) -> list[Request]:
    return [Request(role, [{"role": "user", "content": f"{i}번 질문: 서울의 날씨는 어때요?"}], params=params,
                    meta={"task": "respond", "row": f"q{i}"}) for i in range(start, start + n)]


@pytest.fixture
def setup(tmp_path, fake_server, api_key):
    def make(server_opts=None, budget=None, **role):
        server = fake_server(**(server_opts or {}))
        profile = load_profile(str(write_profile(tmp_path / "profiles" / "p.yaml", server.base_url, **role)), tmp_path)
        store = ResponseStore(tmp_path / "data" / ".llm" / "responses.sqlite3")
        return server, store, LLMClient(profile, store, budget=budget)
    return make


def test_answers_are_stored_and_a_second_ask_is_free(setup):
    server, store, client = setup()
    step = client.for_step("steps[0].respond")
    out = step.complete(ask(5) + ask(2))  # two duplicates: sent once each
    assert all(isinstance(a, Answer) and a.texts[0].startswith("[가짜 답변] ") for a in out)
    assert step.usage.calls == 5 and step.usage.requests == 7 and step.usage.cost > 0
    assert len(server.entries()) == 5
    again = client.for_step("steps[0].respond")
    out2 = again.complete(ask(5))
    assert [a.texts for a in out2] == [a.texts for a in out[:5]] and all(a.cached for a in out2)
    assert again.usage.cache_hits == 5 and again.usage.calls == 0 and again.usage.cost == 0
    assert len(server.entries()) == 5  # nothing sent again
    assert store.totals()["answers"] == 5


def test_transient_failures_are_retried_until_every_request_is_answered(setup):
    server, store, client = setup({"fail_rate": 0.3, "faults": "429,500,truncated"})
    step = client.for_step("s")
    out = step.complete(ask(40))
    assert all(isinstance(a, Answer) for a in out)
    assert sum(step.usage.retries.values()) > 5 and set(step.usage.retries) <= {"rate_limited", "server_error", "broken_response", "connection"}
    assert step.usage.calls == 40 and not step.usage.failed
    assert all(n == 1 for n in server.answered().values())  # retried failures were never answered twice
    statuses = set(store.statuses([a.key for a in out]).values())
    assert statuses == {"done"}


def test_permanent_failures_are_stored_once_and_returned_as_failures(setup):
    server, store, client = setup({"fail_rate": 1.0, "faults": "400"})
    step = client.for_step("s")
    out = step.complete(ask(3))
    assert all(isinstance(f, Failure) and f.reason == "content_policy" for f in out)
    assert step.usage.failed == {"content_policy": 3}
    again = client.for_step("s")
    assert all(isinstance(f, Failure) for f in again.complete(ask(3)))
    assert len(server.entries()) == 3  # not paid for again


def test_retries_give_up_with_a_clear_error_and_keep_what_was_answered(setup):
    server, store, client = setup({"fail_rate": 1.0, "faults": "500"}, max_attempts=2)
    with pytest.raises(DataFactoryError, match=r"still failed after 2 attempts \(last: server_error"):
        client.for_step("s").complete(ask(2))
    assert len(server.entries()) == 4


def test_budget_stops_cleanly_and_keeps_what_was_paid(setup):
    # a call of gpt-4o-mini here costs about $0.00004 at most; the budget allows a handful
    server, store, client = setup(budget=Budget(cap=0.0002), concurrency=1)
    with pytest.raises(BudgetReached, match=r"budget of \$0\.0002 is reached"):
        client.for_step("s").complete(ask(30))
    paid = store.totals()
    assert 0 < paid["answers"] < 30 and paid["cost"] <= 0.0002
    assert client.budget.spent == pytest.approx(paid["cost"])


def test_unknown_price_fails_before_any_call(setup):
    server, store, client = setup(model="my-local-llama")
    with pytest.raises(DataFactoryError, match="no known price for model 'my-local-llama'.*input_per_mtok"):
        client.for_step("s").complete(ask(2))
    assert server.entries() == []


def test_replay_answers_from_the_store_and_names_a_miss(setup, tmp_path):
    server, store, client = setup()
    client.for_step("s").complete(ask(2))
    replay = load_profile(str(write_profile(tmp_path / "profiles" / "r.yaml", "http://unused", provider="replay")), tmp_path)
    rc = LLMClient(replay, store)
    assert [a.cached for a in rc.for_step("s").complete(ask(2))] == [True, True]
    with pytest.raises(DataFactoryError, match=r"steps\[3\]\.respond: the replay profile has no stored answer for row 'q2'"):
        rc.for_step("steps[3].respond").complete(ask(1, start=2))


def test_logprobs_come_back_per_choice(setup):
    server, store, client = setup()
    out = client.for_step("s").complete(ask(1, role="judge", max_tokens=1, logprobs=True, top_logprobs=5))
    top = out[0].top_logprobs[0]
    assert len(top) == 5 and {t["token"] for t in top} <= set("12345")


def test_a_refused_key_stops_the_build_without_storing_anything(tmp_path, fake_server, monkeypatch):
    monkeypatch.delenv("DF_TEST_KEY", raising=False)
    profile = load_profile(str(write_profile(tmp_path / "profiles" / "p.yaml", "https://api.openai.com/v1")), tmp_path)
    store = ResponseStore(tmp_path / "s.sqlite3")
    with pytest.raises(DataFactoryError, match=r"no API key in \$DF_TEST_KEY"):
        LLMClient(profile, store).for_step("s").complete(ask(1))


# -- the limiter, on a fake clock --------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    async def sleep(self, s):
        self.t += s


def test_limiter_holds_the_rate_and_reconciles_tokens():
    clock = Clock()
    lim = Limiter(rpm=600, tpm=60_000, clock=clock, sleep=clock.sleep)  # 9.5 req/s and 950 tok/s at 95%

    async def run():
        for _ in range(100):
            await lim.reserve(10)
    asyncio.run(run())
    assert 100 / clock.t == pytest.approx(9.5, rel=0.12)  # after the first second's burst, the refill rate
    clock2 = Clock()
    lim2 = Limiter(tpm=6_000, clock=clock2, sleep=clock2.sleep)  # 95 tokens/s

    async def tokens():
        for _ in range(10):
            await lim2.reserve(95)
            lim2.reconcile(95, 5)  # the answer used 5: 90 come back
    asyncio.run(tokens())
    assert clock2.t < 1.0  # without the reconcile this would take about 9 s


def test_limiter_pause_and_headers():
    clock = Clock()
    lim = Limiter(rpm=6000, clock=clock, sleep=clock.sleep)
    lim.pause(2.0)

    async def one():
        await lim.reserve(1)
    asyncio.run(one())
    assert clock.t >= 2.0
    lim.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-limit-tokens": "1000"})
    assert lim.requests.level <= 0 and lim.tokens is not None
    assert retry_after({"retry-after-ms": "250"}, 9) == 0.25 and retry_after({"retry-after": "3"}, 9) == 3
    assert retry_after({}, 9) == 9


def test_n_answers_from_an_endpoint_without_n_are_n_seeded_calls(setup):
    server, store, client = setup(supports_n=False)
    step = client.for_step("s")
    out = step.complete([Request("teacher", [{"role": "user", "content": "하나만"}], {"seed": 5}, 3)])
    assert len(out[0].texts) == 3 and len(out[0].all_keys) == 3 and step.usage.calls == 3
    bodies = len(server.entries())
    assert bodies == 3  # three requests, n=1 each, seeds 5, 6, 7
    again = client.for_step("s").complete([Request("teacher", [{"role": "user", "content": "하나만"}], {"seed": 5}, 3)])
    assert again[0].texts == out[0].texts and len(server.entries()) == 3


def test_a_profile_with_a_role_written_twice_or_not_utf8_is_refused_with_its_line(tmp_path):
    """The second of two `teacher:` blocks replaced the first without a word; a profile saved as cp949 (Korean
    comments) was a UnicodeDecodeError."""
    from datafactory.errors import RecipeError

    path = tmp_path / "p.yaml"
    path.write_text("roles:\n  teacher: {provider: demo, model: a}\n  teacher: {provider: demo, model: b}\n", "utf-8")
    with pytest.raises(RecipeError, match=r"p\.yaml: not valid YAML: line 3, column 3: the key 'teacher' is written "
                       r"twice in one mapping \(first on line 2\)"):
        load_profile(str(path), tmp_path)
    path.write_bytes("# 선생 모델\nroles: {}\n".encode("cp949"))
    with pytest.raises(RecipeError, match=r"p\.yaml: not UTF-8 at byte 2 \(save the profile as UTF-8\)"):
        load_profile(str(path), tmp_path)


@pytest.mark.parametrize("tag", ["think", "thought"])
def test_a_reasoning_models_thinking_is_left_out_of_the_answer_and_kept_in_the_store(setup, tmp_path, tag):
    """A reasoning model served without a reasoning parser (Qwen3, DeepSeek-R1; EXAONE Deep's <thought>) puts its
    thinking before the answer: it went into the SFT answers, and a judge's score was not found after it. The
    steps see the answer alone; the store keeps the whole text, so `reasoning: keep` (reasoning data) asks nothing
    again, and the setting is part of the role's identity (the version id)."""
    from datafactory.llm.types import strip_reasoning

    server, store, client = setup(server_opts={"reasoning": tag})
    step = client.for_step("")
    got = step.complete(ask(2) + [Request("judge", [{"role": "user", "content": "점수?"}], {"max_tokens": 1})])
    assert [a.texts[0] for a in got[:2]] == ["[가짜 답변] 0번 질문: 서울의 날씨는 어때요?",
                                              "[가짜 답변] 1번 질문: 서울의 날씨는 어때요?"]
    assert got[2].texts[0] in "12345" and len(got[2].texts[0]) == 1
    assert store.get(got[0].key)["answer"]["texts"][0].startswith(f"<{tag}>")  # the whole text, as paid for
    keep = load_profile(str(write_profile(tmp_path / "profiles" / "k.yaml", server.base_url, reasoning="keep")), tmp_path)
    again = LLMClient(keep, store).for_step("").complete(ask(2))
    assert again[0].cached and again[0].texts[0].startswith(f"<{tag}>")
    assert keep.identity("teacher")["reasoning"] == "keep" != client.profile.identity("teacher")["reasoning"]
    # the opening tag in the chat template's prompt, not in the answer; thinking cut off by max_tokens
    assert strip_reasoning("생각하는 중...\n</think>\n\n답") == "답"
    assert strip_reasoning("<think>끝나지 않은 생각") == "" and strip_reasoning("답 <think>는 태그") == "답 <think>는 태그"
    assert strip_reasoning("보통 답변") == "보통 답변"
