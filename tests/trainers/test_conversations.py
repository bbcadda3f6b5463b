"""Conversations through the trainers: the conversational sets (chat_sft_v1, chat_rm_v1, chat_ppo_v1) built
offline in the loop's project, and TRL's SFT, reward, DPO and PPO trainers running a few steps on them with a tiny
model and a chat template; the chat template a model is saved with; SFT on whole conversations trained on the
assistant turns only."""
from __future__ import annotations

import json

import pytest

from tests.trainers.conftest import TRAINERS, run

pytestmark = pytest.mark.slow

TINY = TRAINERS / "configs" / "tiny"


def meta(root, name):
    return json.loads((root / "models" / name / "datafactory.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def chat(loop):
    """The loop's project with the conversational sets built and a tiny model SFT-trained on chat_sft_v1."""
    root = loop.root
    for name in ("chat_sft_v1", "chat_rm_v1", "chat_ppo_v1"):
        run(root, "python", "-m", "datafactory", "-q", "build", name)
    sft = run(root, "python", str(TRAINERS / "sft.py"), "--config", str(TINY / "sft.yaml"), "--dataset", "chat_sft_v1",
              "--model", "models/loop-tiny-gpt-neox", "--output", "models/chat-sft", "--num_train_epochs", "3")
    return root, sft.stdout


def test_sft_on_conversations_masks_the_conversation_and_saves_its_chat_template(chat):
    from transformers import AutoTokenizer

    from datafactory.templates.chat import load_chat_template

    root, out = chat
    m = meta(root, "chat-sft")
    assert m["dataset"]["name"] == "chat_sft_v1" and m["dataset"]["format"] == "sft" and m["complete"]
    assert m["chat_template"]["from"] == "kullm (the model has no chat template)"
    assert "loss on the answer only, the conversation before it masked (completion_only_loss)" in out
    kullm = load_chat_template("kullm")[0]
    assert (root / "models" / "chat-sft" / "chat_template.jinja").read_text("utf-8") == kullm
    tok = AutoTokenizer.from_pretrained(root / "models" / "chat-sft")
    turns = [{"role": "user", "content": "밥이랑 달걀로 뭘 만들 수 있을까요?"},
             {"role": "assistant", "content": "채소는 좀 있나요?"}, {"role": "user", "content": "대파만 조금 있어요."}]
    prompt = tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    assert "### 입력:\n사용자: 밥이랑 달걀로 뭘 만들 수 있을까요?\n어시스턴트: 채소는 좀 있나요?\n\n### 응답:\n" in prompt
    assert m["metrics"]["stopping"]["prompts"] > 0  # greedy answers to the held-out conversations, rendered


def test_reward_model_dpo_and_ppo_on_conversational_sets(chat):
    root, _ = chat
    rm = run(root, "python", str(TRAINERS / "rm.py"), "--config", str(TINY / "rm.yaml"), "--dataset", "chat_rm_v1",
             "--model", "models/chat-sft", "--output", "models/chat-rm", "--num_train_epochs", "2")
    acc = meta(root, "chat-rm")["metrics"]["accuracy"]
    test_pairs = json.loads(next((root / "data" / "chat_rm_v1").glob("*/manifest.json")).read_text())["splits"]["test"]
    assert acc["pairs"] == test_pairs and 0 <= acc["accuracy"] <= 1, rm.stdout
    run(root, "python", str(TRAINERS / "dpo.py"), "--config", str(TINY / "dpo.yaml"), "--dataset", "chat_rm_v1",
        "--model", "models/chat-sft", "--output", "models/chat-dpo", "--max_steps", "2")
    assert "eval_rewards/accuracies" in meta(root, "chat-dpo")["metrics"]["eval"]
    ppo = run(root, "python", str(TRAINERS / "ppo.py"), "--config", str(TINY / "ppo.yaml"), "--dataset", "chat_ppo_v1",
              "--model", "models/chat-sft", "--reward_model", "models/chat-rm", "--output", "models/chat-ppo",
              "--total_episodes", "16")
    report = json.loads((root / "models" / "chat-ppo" / "report.json").read_text("utf-8"))
    # the held-out conversations were rendered with the policy's chat template (KULLM's, earlier turns in the input)
    assert report["rows"] and all(r["prompt"].endswith("### 응답:\n") for r in report["rows"]), ppo.stdout
    assert report["training"]


def test_grpo_on_a_conversational_prompt_set_with_rule_rewards_only(chat, tmp_path):
    """chat_ppo_v1's conversations, rendered with the policy's chat template; no reward model (rules only); quiet:
    the libraries' messages in train.log beside the model."""
    from transformers import AutoModelForCausalLM

    root, out = chat[0], tmp_path / "grpo"
    p = run(root, "python", str(TRAINERS / "grpo.py"), "--config", str(TINY / "grpo.yaml"), "--dataset", "chat_ppo_v1",
            "--model", "models/chat-sft", "--no_reward_model", "--rule_rewards", "hangul,length", "--reward_weights",
            "1", "1", "--output", str(out), "--max_steps", "2", "--report_samples", "2")
    assert "rewards: hangul, length" in p.stdout and "it/s" not in p.stdout + p.stderr
    assert (out / "train.log").stat().st_size > 0
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["rows"] and all(r["prompt"].endswith("### 응답:\n") for r in report["rows"])
    assert set(report["verdict"]["parts"]) == {"hangul", "length"}
    assert json.loads((out / "datafactory.json").read_text("utf-8"))["reward_model"] is None
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "gpt_neox"


def test_sft_on_whole_conversations_trains_the_assistant_turns_only(chat, tmp_path):
    """`messages` rows (format text, conversational): assistant_only_loss through the chat template's generation
    marks; the marked tokens are the answer and its EOS, nothing of the conversation before it."""
    from transformers import AutoTokenizer

    from datafactory.templates.chat import load_chat_template
    from datafactory.training import training_chat_template

    root, _ = chat
    rows = [{"id": f"c{i}", "messages": [{"role": "user", "content": f"{i}번: 주말에 뭐 했어?"},
                                         {"role": "assistant", "content": "등산 다녀왔어요."},
                                         {"role": "user", "content": "어디로 갔어요?"},
                                         {"role": "assistant", "content": f"북한산에 {i}시간 다녀왔어요."}]} for i in range(24)]
    (root / "inputs").mkdir(exist_ok=True)
    (root / "inputs" / "chats.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    (root / "recipes" / "chat_lm.yaml").write_text(
        "name: chat_lm\nsources:\n  c: {kind: files, path: inputs/chats.jsonl, options: {id: id, messages: messages}}\n"
        "steps: []\noutput: {format: text, type: conversational}\nsplits: {train: 0.9, test: 0.1}\n", "utf-8")
    try:
        run(root, "python", "-m", "datafactory", "-q", "build", "chat_lm")
        out = run(root, "python", str(TRAINERS / "sft.py"), "--config", str(TINY / "sft.yaml"), "--dataset", "chat_lm",
                  "--model", "models/loop-tiny-gpt-neox", "--output", str(tmp_path / "lm"), "--max_steps", "2",
                  "--chat_template", "kullm")
    finally:
        (root / "recipes" / "chat_lm.yaml").unlink()
    assert "loss on the assistant turns the chat template marks, the rest masked (assistant_only_loss)" in out.stdout
    kullm = load_chat_template("kullm")[0]
    assert (tmp_path / "lm" / "chat_template.jinja").read_text("utf-8") == kullm  # saved without the marks
    tok = AutoTokenizer.from_pretrained(root / "models" / "loop-tiny-gpt-neox")
    got = tok.apply_chat_template(rows[0]["messages"], chat_template=training_chat_template(kullm), tokenize=True,
                                  return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(got["input_ids"], got["assistant_masks"]) if m]
    assert tok.decode(marked) == "북한산에 0시간 다녀왔어요." + tok.eos_token
