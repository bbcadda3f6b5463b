"""The transformers provider on a tiny GPT-NeoX: left padding (a batch gives what one-at-a-time gives),
pad = EOS, only new tokens decoded, stop strings, answers stored, and the model's files in its identity."""
from __future__ import annotations

import pytest
import yaml

from datafactory.llm.client import LLMClient
from datafactory.llm.profiles import load_profile
from datafactory.llm.store import ResponseStore
from datafactory.llm.types import Answer, Request
from tests.tiny import causal_lm


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return causal_lm(tmp_path_factory.mktemp("models") / "sft")


def profile(tmp_path, model_dir, **params):
    path = tmp_path / "profiles" / "local.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"roles": {"sft": {"provider": "transformers", "model": str(model_dir),
                                                      "params": {"max_tokens": 12, **params}, "batch_size": 4}}}), "utf-8")
    return load_profile(str(path), tmp_path)


PROMPTS = ["안녕하세요", "이번 여름에 제주도 갈 생각인데 가 봤어? 바다가 예쁘대요", "그건 인정", "오늘 무슨 영화 볼까?",
           "주말에 부모님 댁 가?"]


def ask(prompts, n=1):
    return [Request("sft", [{"role": "user", "content": t}], {}, n, {"task": "respond", "input": t}) for t in prompts]


def test_a_batch_answers_as_one_at_a_time_does(tmp_path, model):
    """Greedy decoding of prompts of different lengths: with left padding and the attention mask, batching
    changes nothing (right padding would make the short prompts continue from pads)."""
    batched = LLMClient(profile(tmp_path, model), ResponseStore(tmp_path / "a.sqlite3")).for_step("s")
    together = batched.complete(ask(PROMPTS))
    alone = []
    for t in PROMPTS:
        client = LLMClient(profile(tmp_path, model), ResponseStore(tmp_path / f"b{len(alone)}.sqlite3"))
        alone += client.for_step("s").complete(ask([t]))
    assert [a.texts for a in together] == [a.texts for a in alone]
    assert all(isinstance(a, Answer) and 0 < a.usage["output_tokens"] <= 12 for a in together)
    assert batched.usage.calls == 5 and batched.usage.cost == 0
    for a, t in zip(together, PROMPTS):
        assert "<|endoftext|>" not in a.texts[0] and not a.texts[0].startswith(t)  # new tokens only


def test_stored_answers_are_replayed_and_n_samples_differ(tmp_path, model):
    store = ResponseStore(tmp_path / "s.sqlite3")
    client = LLMClient(profile(tmp_path, model, temperature=1.0, seed=3), store)
    first = client.for_step("s").complete(ask(PROMPTS[:2], n=3))
    assert all(len(a.texts) == 3 for a in first) and len(set(first[0].texts)) > 1
    again = LLMClient(profile(tmp_path, model, temperature=1.0, seed=3), store).for_step("s")
    assert [a.texts for a in again.complete(ask(PROMPTS[:2], n=3))] == [a.texts for a in first]
    assert again.usage.cache_hits == 2 and again.usage.calls == 0


def test_stop_strings_cut_the_answer(tmp_path, model):
    client = LLMClient(profile(tmp_path, model, max_tokens=40), ResponseStore(tmp_path / "t.sqlite3"))
    full = client.for_step("s").complete(ask(["안녕하세요"]))[0].texts[0]
    assert len(full.strip()) >= 4, full  # an answer long enough to cut in the middle
    stop = next(c for c in full[len(full) // 2:] if not c.isspace())
    cut = LLMClient(profile(tmp_path, model, max_tokens=40, stop=[stop]), ResponseStore(tmp_path / "u.sqlite3"))
    text = cut.for_step("s").complete(ask(["안녕하세요"]))[0].texts[0]
    assert text == full.split(stop)[0].strip() and stop not in text and len(text) < len(full.strip())


def test_a_retrained_model_is_another_model(tmp_path, model):
    p = profile(tmp_path, model)
    before = p.identity("sft")["model"]
    other = causal_lm(tmp_path / "sft", seed=1)  # same name and architecture, other weights
    assert profile(tmp_path, other).identity("sft")["model"] != before


def test_a_missing_model_folder_says_how_to_make_one(tmp_path):
    from datafactory.errors import DataFactoryError

    with pytest.raises(DataFactoryError, match=r"no model there .*trainers/sft\.py"):
        profile(tmp_path, tmp_path / "nothing").identity("sft")
