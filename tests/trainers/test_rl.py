"""GRPO and RLOO by dataset name, the report's verdict, the rule rewards, and PPO on a TRL without it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from datafactory.rl import RULES, RewardArguments, Rewards, reward_functions, verdict
from datafactory.training import TrainingError
from tests.conftest import REPO
from tests.trainers.conftest import TRAINERS, run

TINY = TRAINERS / "configs" / "tiny"


def measured(greedy: list[str], seeds: list[list[float]], texts: list[str] | None = None,
             eos: list[bool] | None = None) -> dict:
    return {"greedy": [{"text": t} for t in greedy],
            "sampled": [{"texts": texts or [str(i)] * len(r), "rewards": r, "eos": eos or [True] * len(r),
                         "parts": {"reward_model": sum(r) / len(r)}} for i, r in enumerate(seeds)]}


def test_the_verdict_says_moved_only_beyond_the_seed_spread():
    before = measured(["가", "나"], [[0.0, 0.2], [0.1, 0.1], [0.2, 0.2]])  # seed means 0.1, 0.1, 0.2: spread 0.1
    up = verdict(before, measured(["다", "나"], [[0.5, 0.5], [0.4, 0.6], [0.6, 0.6]]))
    assert up["state"] == "moved" and up["moved"] and up["gain"] == pytest.approx(0.4)
    assert up["spread"] == pytest.approx(0.1) and "rose by +0.400" in up["sentence"] and "1 of 2" in up["sentence"]
    small = verdict(before, measured(["다", "나"], [[0.1, 0.2], [0.2, 0.2], [0.1, 0.3]]))
    assert small["state"] == "within noise" and not small["moved"] and "No measurable change" in small["sentence"]
    down = verdict(before, measured(["다", "나"], [[-0.5, -0.5], [-0.4, -0.6], [-0.6, -0.6]]))
    assert down["state"] == "fell" and not down["moved"] and "wrong way" in down["sentence"]
    same = verdict(before, before)
    assert same["state"] == "unchanged" and "did not change" in same["sentence"]


def test_the_verdict_warns_when_answers_start_to_loop():
    before = measured(["하늘이 파란 건 빛이 흩어지기 때문이에요.", "좋아요."], [[0.0], [0.1], [0.0]])
    after = measured(["은은은은은은은은은은은은은은은은", "좋아요."], [[2.0], [2.1], [2.0]])
    v = verdict(before, after)
    assert v["state"] == "moved" and v["more_looping"] == 1 and "gaming the reward model" in v["sentence"]


def test_the_verdict_says_how_many_more_answers_end_on_their_own():
    before = measured(["가", "나"], [[0.0, 0.2], [0.1, 0.1], [0.2, 0.2]], eos=[True, False])
    after = measured(["다", "나"], [[0.5, 0.5], [0.4, 0.6], [0.6, 0.6]], eos=[True, True])
    v = verdict(before, after)
    assert v["stopped"] == {"before": 0.5, "after": 1.0}
    assert "end on their own (not cut at the length limit): 50% before, 100% after" in v["sentence"]
    assert "end on their own" not in verdict(before, measured(["다", "나"], [[0.5, 0.5], [0.4, 0.6], [0.6, 0.6]],
                                                              eos=[False, True]))["sentence"]  # no change, not said


def test_rule_rewards_by_name():
    answers = ["하늘이 파란 것은 햇빛이 공기에 흩어지기 때문이에요.", "ok ok ok", "은은은은은은은은은은은은", ""]
    assert RULES["hangul"](None, answers) == [1.0, 0.0, 1.0, 0.0]
    length = RULES["length"](None, answers)
    assert length[0] == 1.0 and 0 < length[1] < 1 and length[3] == 0.0
    rep = RULES["repetition"](None, answers)
    assert rep[0] == 1.0 and rep[2] == pytest.approx(1 / 10) and rep[3] == 1.0
    fluent = RULES["fluency"](None, answers)
    assert fluent[0] > 0.5 > fluent[2] and fluent[3] == 0.0 and all(0 <= f <= 1 for f in fluent)
    # conversational completions (lists of messages) are read the same way
    assert RULES["hangul"](None, [[{"role": "assistant", "content": answers[0]}]]) == [1.0]


def test_an_unknown_rule_or_no_reward_at_all_is_a_clear_error():
    with pytest.raises(TrainingError, match="no rule 'hangl'.*hangul, length, repetition, fluency"):
        reward_functions(None, None, RewardArguments(rule_rewards="hangul,hangl"))
    with pytest.raises(TrainingError, match="--no_reward_model leaves no reward"):
        reward_functions(None, None, RewardArguments(no_reward_model=True))
    funcs = reward_functions(None, None, RewardArguments(rule_rewards="length, hangul,length"))
    assert [f.__name__ for f in funcs] == ["length", "hangul"]


def test_ppo_on_a_trl_without_it_says_in_one_line_how_to_get_it():
    """TRL 1.13+ has no trl.experimental.ppo: ppo.py says how to get TRL 1.12, and that grpo.py takes the same
    arguments, in one line (no traceback)."""
    code = ("import runpy, sys; sys.modules['trl.experimental.ppo'] = None; "
            f"sys.argv = ['ppo.py', '--dataset', 'rm_v3']; runpy.run_path({str(TRAINERS / 'ppo.py')!r}, "
            "run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: PPO needs TRL 1.12") and "pip install 'trl==1.12.0'" in lines[0]
    assert "trainers/grpo.py with the same arguments" in lines[0]


@pytest.mark.slow
def test_rloo_on_the_loops_prompts_saves_a_model_that_loads_and_a_report(loop, tmp_path):
    """A few RLOO steps with the loop's models (--verbose: the libraries' messages on the terminal, no train.log)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, out = loop.root, tmp_path / "rloo"
    p = run(root, "python", str(TRAINERS / "rloo.py"), "--config", str(TINY / "rloo.yaml"), "--dataset", "ppo_v1",
            "--data_dir", "loop/data", "--model", "models/loop-sft_v2", "--reward_model", "models/loop-rm_v3",
            "--output", str(out), "--max_steps", "3", "--report_samples", "2", "--rule_rewards", "hangul",
            "--verbose")
    assert "RLOO on ppo_v1@" in p.stdout and "rewards: reward_model, hangul" in p.stdout
    assert "examples/s" in p.stderr or "it/s" in p.stderr  # the libraries' own output, shown
    assert not (out / "train.log").exists()
    m = json.loads((out / "datafactory.json").read_text("utf-8"))
    assert m["stage"] == "rloo" and m["complete"] and m["rewards"] == ["reward_model", "hangul"]
    assert m["dataset"]["ref"].startswith("ppo_v1@") and m["reward_model"].endswith("loop-rm_v3")
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["stage"] == "rloo" and report["rows"] and len(report["training"]) == 3
    assert set(report["verdict"]["parts"]) == {"reward_model", "hangul"}
    assert len(report["sampled"]["after"][0]["rewards"]) == 2 * report["prompts"]  # 2 samples per prompt
    assert (out / "rloo_rewards.png").read_bytes()[:4] == b"\x89PNG"
    assert report["verdict"]["sentence"] in (out / "report.md").read_text("utf-8")
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "gpt_neox" and tok.chat_template  # merged weights, the template kept
    assert not list(out.glob("adapter_*"))


def test_the_report_weighs_the_rewards_as_training_does():
    with pytest.raises(TrainingError, match=r"--reward_weights has 2 numbers for 1 rewards \(hangul\)"):
        Rewards(None, None, [RULES["hangul"]], weights=[1.0, 2.0])
    rewards = Rewards(None, None, [RULES["hangul"], RULES["length"]], weights=[2.0, 0.5])
    answers = [{"text": "안녕하세요 abc", "eos": True}, {"text": "좋아요", "eos": False}]
    parts = rewards(["p", "p"], answers)
    assert parts == {"hangul": [5 / 8, 1.0], "length": [0.45, 0.15]}
    assert rewards.total(parts, 0) == pytest.approx(2 * 5 / 8 + 0.5 * 0.45)
