"""What the reinforcement-learning trainers share (``trainers/ppo.py``, ``grpo.py``, ``rloo.py``): the SFT and reward
models a prompt set needs, found under ``models/``; the reward model as a reward function scored exactly as it was
trained; rule rewards by name; and the honest before/after report.

The report answers one question: did the policy change, and by more than chance? The held-out prompts are answered
before and after training, greedily (the table a person reads) and by sampling ``--report_samples`` answers (4) per
prompt with each of ``--report_seeds`` seeds (3) at the training temperature. Every answer is rewarded as in training
(the reward model's score, less the missing-EOS penalty, plus any rule rewards; each part is reported). The gain is
the mean sampled reward after minus before; the noise is the spread of the per-seed means (the largest minus the
smallest, before or after, whichever is wider). The report says "moved" only when the gain exceeds that spread,
"fell" when the loss does, says plainly when every answer is the same as before (the policy did not change), and
otherwise that the change is within the noise. When more greedy answers loop on a phrase after training than
before, it says the policy may be gaming the reward model.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from datafactory.korean import hangul_share
from datafactory.training import (TrainingError, answer_text, as_text, find_model, follow, generate, held_out_prompts,
                                  same_template, say, score, stop_strings)


@dataclass
class RLArguments:
    """The options the RL trainers add to TRL's config (the datafactory side)."""

    reward_model: str | None = field(default=None, metadata={"help": "The reward model folder (default: found "
                                                                      "under models/, trained on this dataset's lineage)."})
    report_prompts: int = field(default=8, metadata={"help": "Held-out prompts answered before and after training."})
    report_seeds: int = field(default=3, metadata={"help": "Sampling seeds, before and after: the spread of their "
                                                           "mean rewards is the report's noise."})
    report_samples: int = field(default=4, metadata={"help": "Sampled answers per held-out prompt and seed."})
    max_prompt_length: int = field(default=512, metadata={"help": "Longer prompts keep their last tokens."})
    allow_template_mismatch: bool = field(default=False, metadata={"help": "Train although the dataset's prompt "
                                          "template is not the one the SFT model was trained with."})


@dataclass
class RewardArguments:
    """GRPO and RLOO: what rewards an answer besides the reward model."""

    rule_rewards: str = field(default="", metadata={"help": "Rule rewards added to the reward model's, by name, "
                                                            "comma-separated: hangul, length, repetition, fluency "
                                                            "(see datafactory/rl.py)."})
    missing_eos_penalty: float = field(default=1.0, metadata={"help": "Subtracted from the reward model's score of "
                                                                      "an answer that never stopped (as PPO's)."})
    no_reward_model: bool = field(default=False, metadata={"help": "Rule rewards only (no reward model)."})


# -- the models a stage needs ---------------------------------------------------------------------------------
def find_models(ds, data_args, rl_args, stage: str, *, need_rm: bool = True) -> tuple[str, str | None, list[str]]:
    """The SFT and reward model folders, and why each was picked; one error listing what is missing."""
    lineage, notes, missing = ds.lineage(), [], []
    sft_set = lineage[1] if len(lineage) > 1 else "sft_v2"
    rm_set = ds.name if ds.manifest.get("format") == "preference" else "rm_v3"
    sft = data_args.model
    if sft:
        notes.append(f"SFT model {sft} (--model)")
    else:
        try:
            folder, meta, why = find_model("sft", lineage[1:] + lineage[:1])
            sft = str(folder)
            notes.append(f"SFT model {folder} ({why})")
            if (not ds.conversational and not same_template(meta["dataset"]["template"], ds.template)
                    and not rl_args.allow_template_mismatch):
                raise TrainingError(f"{ds.ref}'s prompts were rendered with another template than the one {folder} was "
                                    f"trained with ({meta['dataset']['ref']}); rebuild one of them with the same "
                                    "template, or pass --allow_template_mismatch")
        except TrainingError as e:
            if "template" in str(e):
                raise
            missing.append(f"an SFT model: `python trainers/sft.py --dataset {sft_set}` (or --model PATH)")
    rm = rl_args.reward_model
    if rm:
        notes.append(f"reward model {rm} (--reward_model)")
    elif need_rm:
        try:
            folder, _, why = find_model("rm", [ds.name, *lineage])
            rm = str(folder)
            notes.append(f"reward model {folder} ({why})")
        except TrainingError:
            missing.append(f"a reward model: `python trainers/rm.py --dataset {rm_set}` (or --reward_model PATH)")
    if missing:
        raise TrainingError(f"{stage} on {ds.ref} needs " + " and ".join(missing) + " (looked in models/ for folders "
                            "with datafactory.json; `python trainers/loop.py` makes tiny ones offline)")
    return sft, rm, notes


def check_chat_template(ds, tok, sft: str) -> None:
    if ds.conversational and not getattr(tok, "chat_template", None):
        raise TrainingError(f"{ds.ref} holds conversations, and {sft} has no chat template to render them; retrain it "
                            "with trainers/sft.py (which saves one) or build a text prompt set (ppo_v1)")


def training_prompts(ds, data_args, tok, exclude: list) -> list:
    """The train split's distinct prompts (text, or conversations as lists of messages), without the held-out ones
    the report answers (compared as the model reads them)."""
    held = set(as_text(tok, exclude)) if data_args.eval_split in ds.splits else set()
    out: dict[str, object] = {}
    for p in ds.split(data_args.train_split)["prompt"]:
        text = as_text(tok, [p])[0]
        if p and text not in held:
            out.setdefault(text, p)
    if not out:
        raise TrainingError(f"{ds.ref} has no prompts in its {data_args.train_split} split")
    return list(out.values())


# -- rewards --------------------------------------------------------------------------------------------------
class RewardModelReward:
    """The reward model as a GRPO/RLOO reward function, scoring each answer as ``RewardTrainer`` trained it
    (``training.score``: prompt + answer + EOS, or the conversation through the chat template; TRL's own path for a
    model leaves the EOS out), less ``missing_eos_penalty`` for an answer that never stopped."""

    __name__ = "reward_model"

    def __init__(self, model, tok, missing_eos_penalty: float = 1.0):
        self.model, self.tok, self.penalty = model, tok, missing_eos_penalty

    def __call__(self, prompts, completions, completion_ids=None, **_):
        rewards = score(self.model, self.tok, list(prompts), list(completions))
        if completion_ids is None:
            return rewards
        eos = self.tok.eos_token_id
        return less_missing_eos(rewards, [bool(ids) and ids[-1] == eos for ids in completion_ids], self.penalty)


def less_missing_eos(rewards: list[float], stopped: list[bool], penalty: float) -> list[float]:
    """The reward model's scores less ``penalty`` for each answer that never stopped (ran into the length limit),
    as PPO's ``missing_eos_penalty`` applies it: one rule for training and for the report."""
    return [r - (0.0 if done else penalty) for r, done in zip(rewards, stopped)]


def hangul(prompts, completions, **_) -> list[float]:
    """The share of Hangul syllables among an answer's letters (0-1): a push towards answering in Korean."""
    return [hangul_share(answer_text(c)) or 0.0 for c in completions]


def length(prompts, completions, **_) -> list[float]:
    """1 for answers of 20 to 400 characters, falling linearly to 0 at 0 and at 1,200: neither a one-word reply nor
    a ramble."""
    out = []
    for c in completions:
        n = len(answer_text(c).strip())
        out.append(min(1.0, n / 20) if n < 400 else max(0.0, 1 - (n - 400) / 800))
    return out


def repetition(prompts, completions, **_) -> list[float]:
    """Distinct 3-character shingles over all of an answer's (0-1; 1 under 3 characters): a push away from loops
    such as `은은은은`, the way a policy most often games a small reward model."""
    out = []
    for c in completions:
        text = "".join(answer_text(c).split())
        shingles = [text[i:i + 3] for i in range(len(text) - 2)]
        out.append(len(set(shingles)) / len(shingles) if shingles else 1.0)
    return out


def fluency(prompts, completions, **_) -> list[float]:
    """The offline rule-of-thumb judge's reading of an answer as Korean (0-1: Kiwi's per-character log-probability
    x Hangul share x distinct shingles, halved per broken character; datafactory/llm/rules.py), needs kiwipiepy."""
    from datafactory.llm.rules import rule_score

    return [(rule_score(answer_text(c)) - 1.0) / 4.0 for c in completions]


RULES = {"hangul": hangul, "length": length, "repetition": repetition, "fluency": fluency}


def reward_functions(reward_model, tok, args: RewardArguments) -> list:
    names = [n.strip() for n in args.rule_rewards.split(",") if n.strip()]
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise TrainingError(f"--rule_rewards: no rule '{unknown[0]}' (rules: {', '.join(RULES)})")
    funcs = [] if reward_model is None else [RewardModelReward(reward_model, tok, args.missing_eos_penalty)]
    funcs += [RULES[n] for n in dict.fromkeys(names)]
    if not funcs:
        raise TrainingError("--no_reward_model leaves no reward: name rule rewards with --rule_rewards hangul,length")
    return funcs


# -- before and after -----------------------------------------------------------------------------------------
class Rewards:
    """The reward a stage trains on, part by part, for the report: the reward model's score less the missing-EOS
    penalty (as PPO applies it, and as ``RewardModelReward`` does), plus each rule reward, weighted as TRL weighs
    them (``--reward_weights``, in the order of the rewards; 1 each by default)."""

    def __init__(self, reward_model, tok, rules=(), missing_eos_penalty: float = 0.0, weights=None):
        self.reward_model, self.tok, self.rules, self.penalty = reward_model, tok, list(rules), missing_eos_penalty
        names = (["reward_model"] if reward_model is not None else []) + [r.__name__ for r in self.rules]
        if weights is not None and len(weights) != len(names):
            raise TrainingError(f"--reward_weights has {len(weights)} numbers for {len(names)} rewards "
                                f"({', '.join(names)}): give one per reward, in that order")
        self.weights = dict(zip(names, weights if weights is not None else [1.0] * len(names)))

    def __call__(self, prompts: list, answers: list[dict]) -> dict[str, list[float]]:
        texts = [a["text"] for a in answers]
        parts = {}
        if self.reward_model is not None:
            raw = score(self.reward_model, self.tok, prompts, texts)
            parts["reward_model"] = less_missing_eos(raw, [a["eos"] for a in answers], self.penalty)
        for rule in self.rules:
            parts[rule.__name__] = list(rule(prompts, texts))
        return parts

    def total(self, parts: dict[str, list[float]], i: int) -> float:
        return sum(self.weights[k] * v[i] for k, v in parts.items())


def measure(policy, rewards: Rewards, tok, prompts: list, *, max_new_tokens: int, template, seeds: int,
            samples: int, temperature: float) -> dict:
    """The held-out prompts answered greedily, and ``samples`` times each by sampling with each of ``seeds`` seeds,
    every answer rewarded as in training (``rewards``: the total, and the mean of each part per seed)."""
    texts = as_text(tok, prompts)
    stops = stop_strings(template)
    greedy = generate(policy, tok, texts, max_new_tokens=max_new_tokens, stops=stops)
    parts = rewards(prompts, greedy)
    for i, a in enumerate(greedy):
        a["reward"] = round(rewards.total(parts, i), 4)
    sampled = []
    many, many_texts = [p for p in prompts for _ in range(samples)], [t for t in texts for _ in range(samples)]
    for seed in range(seeds):
        answers = generate(policy, tok, many_texts, max_new_tokens=max_new_tokens, stops=stops, sample=True,
                           temperature=temperature, seed=seed, batch_size=16)
        parts = rewards(many, answers)
        totals = [rewards.total(parts, i) for i in range(len(answers))]
        sampled.append({"seed": seed, "texts": [a["text"] for a in answers], "eos": [a["eos"] for a in answers],
                        "rewards": [round(r, 4) for r in totals],
                        "parts": {k: round(_mean(v), 4) for k, v in parts.items()}})
    return {"greedy": greedy, "sampled": sampled}


def _mean(xs) -> float:
    return statistics.fmean(xs) if xs else 0.0


def verdict(before: dict, after: dict) -> dict:
    """Whether the policy moved (see the module's text): the figures and one sentence."""
    means_b = [_mean(s["rewards"]) for s in before["sampled"]]
    means_a = [_mean(s["rewards"]) for s in after["sampled"]]
    spread = max((max(m) - min(m) for m in (means_b, means_a) if m), default=0.0)
    gain = _mean(means_a) - _mean(means_b)
    changed = sum(b["text"] != a["text"] for b, a in zip(before["greedy"], after["greedy"]))
    same_samples = all(sb["texts"] == sa["texts"] for sb, sa in zip(before["sampled"], after["sampled"]))
    n, k = len(before["greedy"]), len(means_b)
    figures = (f"{gain:+.3f} ({_mean(means_b):+.3f} -> {_mean(means_a):+.3f}), {{}} the spread of the mean across "
               f"{k} sampling seeds ({spread:.3f}); {changed} of {n} greedy answers changed.")
    if changed == 0 and same_samples:
        state = "unchanged"
        sentence = (f"The policy did not change: all {n} held-out answers, greedy and sampled ({k} seeds), are the same "
                    "as before training. Raise the learning rate or the number of steps, or check that the reward "
                    "varies between answers.")
    elif gain > spread:
        state = "moved"
        sentence = "The policy moved: the held-out mean reward rose by " + figures.format("more than")
    elif -gain > spread:
        state = "fell"
        sentence = ("The policy moved the wrong way: the held-out mean reward fell by " + figures.format("more than")
                    + " Training rewarded something that does not hold on new prompts: lower the learning rate, or "
                    "give the reward model more pairs.")
    else:
        state = "within noise"
        sentence = "No measurable change: the held-out mean reward moved by " + figures.format("within")
    looping = sum(r < 0.5 for r in repetition(None, [a["text"] for a in after["greedy"]])) - sum(
        r < 0.5 for r in repetition(None, [b["text"] for b in before["greedy"]]))
    if state in ("moved", "fell") and looping > 0:
        sentence += (f" {looping} more greedy answer{'s' if looping > 1 else ''} than before loop on a phrase (under "
                     "half their 3-character shingles distinct): the policy may be gaming the reward model (more pairs for "
                     "it, a KL term (--beta) or a weighted repetition rule push against that).")
    parts = {name: {"before": round(_mean([s["parts"][name] for s in before["sampled"]]), 4),
                    "after": round(_mean([s["parts"][name] for s in after["sampled"]]), 4)}
             for name in (before["sampled"][0]["parts"] if before["sampled"] else {})}
    stopped = {k: round(_mean([e for s in run["sampled"] for e in s["eos"]]), 4)
               for k, run in (("before", before), ("after", after))}
    if state in ("moved", "fell") and abs(stopped["after"] - stopped["before"]) >= 0.1:
        sentence += (f" Sampled answers that end on their own (not cut at the length limit): {stopped['before']:.0%} "
                     f"before, {stopped['after']:.0%} after.")
    return {"state": state, "moved": state == "moved", "gain": round(gain, 4), "spread": round(spread, 4),
            "stopped": stopped,
            "seed_means_before": [round(m, 4) for m in means_b], "seed_means_after": [round(m, 4) for m in means_a],
            "parts": parts, "greedy_changed": changed, "more_looping": max(0, looping), "prompts": n,
            "sentence": sentence}


# the training curves each stage logs: (key of the reward, key of the KL)
CURVES = {"ppo": ("objective/scores", "objective/kl", "episode"), "grpo": ("reward", "kl", "step"),
          "rloo": ("reward", "kl", "step")}


def write_report(output: Path, stage: str, ds, prompts: list, before: dict, after: dict, history: list[dict],
                 notes: list[str], tok) -> dict:
    """``report.json``, ``report.md`` and ``<stage>_rewards.png`` (reward and KL over training) beside the model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = verdict(before, after)
    texts = as_text(tok, prompts)
    rows = [{"prompt": p, "before": b["text"], "reward_before": b["reward"], "eos_before": b["eos"],
             "after": a["text"], "reward_after": a["reward"], "eos_after": a["eos"]}
            for p, b, a in zip(texts, before["greedy"], after["greedy"])]
    reward_key, kl_key, x_key = CURVES[stage]
    steps = [h for h in history if reward_key in h]
    name = stage.upper()
    summary = {"stage": stage, "dataset": ds.ref, "prompts": len(rows), "models": notes, "verdict": v,
               "mean_reward_before": round(_mean(v["seed_means_before"]), 4),
               "mean_reward_after": round(_mean(v["seed_means_after"]), 4),
               "greedy_reward_before": round(_mean([r["reward_before"] for r in rows]), 4),
               "greedy_reward_after": round(_mean([r["reward_after"] for r in rows]), 4),
               "sampled": {"before": before["sampled"], "after": after["sampled"]},
               "training": [{k: h[k] for k in (x_key, "step", reward_key, kl_key) if k in h} for h in steps]}
    (output / "report.json").write_text(json.dumps({**summary, "rows": rows}, ensure_ascii=False, indent=2), "utf-8")

    def cell(text):
        return (text or "(empty)").replace("|", "\\|").replace("\n", "<br>")

    plot = f"{stage}_rewards.png"
    lines = [f"# {name} on {ds.ref}: answers before and after", "", *[f"- {m}" for m in notes], "",
             f"**{v['sentence']}**", "",
             f"Mean reward of sampled answers per seed, before: {', '.join(f'{m:+.3f}' for m in v['seed_means_before'])}; "
             f"after: {', '.join(f'{m:+.3f}' for m in v['seed_means_after'])}. Greedy answers: "
             f"{summary['greedy_reward_before']:+.3f} before, {summary['greedy_reward_after']:+.3f} after.",
             *(["The reward, part by part (mean of the sampled answers): " + "; ".join(
                 f"{k} {p['before']:+.3f} -> {p['after']:+.3f}" for k, p in v["parts"].items()) + "."]
               if len(v["parts"]) > 1 else []), "",
             f"![reward and KL]({plot})", "",
             "| prompt | before | reward | after | reward |", "|---|---|---|---|---|"]
    for p, r in zip(prompts, rows):
        question = (p[-1]["content"] if not isinstance(p, str) else
                    p.rsplit("### 명령어:", 1)[-1].split("###")[0].strip() or p[-80:])
        lines.append(f"| {cell(question)} | {cell(r['before'])} | {r['reward_before']:+.3f} | {cell(r['after'])} | "
                     f"{r['reward_after']:+.3f} |")
    (output / "report.md").write_text("\n".join(lines) + "\n", "utf-8")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    x = [s.get(x_key, i) for i, s in enumerate(steps)]
    axes[0].plot(x, [s[reward_key] for s in steps], marker=".")
    axes[0].set(title="reward", xlabel=x_key)
    axes[1].plot(x, [s.get(kl_key, 0) for s in steps], marker=".", color="tab:orange")
    axes[1].set(title="KL to the reference", xlabel=x_key)
    fig.suptitle(f"{name} on {ds.ref}")
    fig.tight_layout()
    fig.savefig(output / plot, dpi=100)
    plt.close(fig)
    return summary


def print_result(stage: str, output: Path, summary: dict) -> None:
    say(f"saved {output}")
    say(summary["verdict"]["sentence"])
    say(f"report: {output / 'report.md'}  plot: {output / f'{stage}_rewards.png'}")


def fit_prompt(tok, prompt, max_tokens: int):
    """A prompt within ``max_tokens`` as the model reads it: text keeps its last tokens; a conversation drops its
    earliest turns (never the last)."""
    if isinstance(prompt, str):
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        return prompt if len(ids) <= max_tokens else tok.decode(ids[-max_tokens:])
    msgs = list(prompt)
    while len(msgs) > 1 and len(tok(as_text(tok, [msgs])[0], add_special_tokens=False)["input_ids"]) > max_tokens:
        msgs = msgs[1:]
    return msgs


def train_group(stage: str, trainer_cls, data_args, rl_args, reward_args, training_args, model_args) -> dict:
    """GRPO or RLOO (TRL's trainers take the same arguments) on a dataset's prompts, rewarded by the reward model
    and any rule rewards; the report before and after (see the module's text)."""
    from datasets import Dataset
    from trl import get_peft_config

    from datafactory.training import (finish_meta, load_model, load_tokenizer, output_dir, pin, resolve_dataset,
                                      to_device, write_meta)

    name = stage.upper()
    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=("prompt",), stage=name)
    sft, rm, notes = find_models(ds, data_args, rl_args, name, need_rm=not reward_args.no_reward_model)
    for note in notes:
        say(note)
    output = output_dir(data_args, training_args, f"{stage}-{ds.name}")
    tok = load_tokenizer(sft, padding_side="left")
    check_chat_template(ds, tok, sft)
    policy = load_model("causal", sft, model_args, training_args, tok)
    reward_model = to_device(load_model("score", rm, model_args, training_args, tok)).eval() if rm else None
    funcs = reward_functions(reward_model, tok, reward_args)
    rewards = Rewards(reward_model, tok, [f for f in funcs if f in RULES.values()], reward_args.missing_eos_penalty,
                      training_args.reward_weights)
    report = held_out_prompts(ds, data_args, rl_args.report_prompts)
    prompts = [fit_prompt(tok, p, rl_args.max_prompt_length) for p in training_prompts(ds, data_args, tok, report)]
    train = Dataset.from_dict({"prompt": prompts})
    meta = write_meta(output, stage, ds, (data_args, rl_args, reward_args, training_args, model_args), sft_model=sft,
                      reward_model=rm, rewards=[f.__name__ for f in funcs])
    pin(ds, output)
    say(f"{name} on {ds.ref} ({len(prompts)} prompts, {training_args.num_generations} answers each; rewards: "
          f"{', '.join(f.__name__ for f in funcs)}) -> {output}")
    trainer = trainer_cls(model=policy, reward_funcs=funcs, args=training_args, train_dataset=train,
                          processing_class=tok, peft_config=get_peft_config(model_args))
    follow(trainer, name)


    def now() -> dict:
        from trl.models.utils import unwrap_model_for_generation

        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            return measure(model, rewards, tok, report, max_new_tokens=training_args.max_completion_length,
                           template=ds.template, seeds=rl_args.report_seeds, samples=rl_args.report_samples,
                           temperature=training_args.temperature)

    before = now()  # with LoRA the adapters start as a no-op: this is the SFT model
    trainer.train()
    after = now()
    if trainer.accelerator.is_main_process:
        from datafactory.training import save

        save(trainer, tok, output)
    summary = write_report(output, stage, ds, report, before, after, trainer.state.log_history, notes, tok)
    finish_meta(output, meta, metrics={k: v for k, v in summary.items() if k not in ("models", "sampled")})
    print_result(stage, output, summary)
    return summary
