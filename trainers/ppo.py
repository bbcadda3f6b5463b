"""PPO (trl.experimental.ppo, TRL 1.12) on the prompts of any datafactory dataset with a `prompt` column: a PPO
prompt set (ppo_v1) or a preference set (rm_v3), by name; text prompts as they are, conversational ones (chat_ppo_v1)
rendered with the policy's chat template (the one trainers/sft.py saved with it).

    python trainers/ppo.py --dataset rm_v3            # finds the SFT and reward models under models/
    python trainers/ppo.py --dataset ppo_v1 --model models/sft_v2 --reward_model models/rm_v3 --value_model rm
    # several GPUs, DeepSpeed through accelerate (TRL 1.12's PPOConfig cannot take --deepspeed)
    accelerate launch --num_processes 4 trainers/ppo.py --dataset ppo_v1
    accelerate launch --config_file trainers/configs/accelerate_zero2.yaml --num_processes 4 trainers/ppo.py --dataset ppo_v1
    accelerate launch --config_file trainers/configs/accelerate_zero3.yaml --num_processes 4 trainers/ppo.py --dataset ppo_v1
    # CPU, toy scale (the offline loop)
    python trainers/ppo.py --config trainers/configs/tiny/ppo.yaml --dataset ppo_v1

The seed's setup by default: the policy starts from the SFT model and trains LoRA adapters (`--use_peft false`
for every weight); the reference is the same model with the adapters off (frozen); the critic starts from the
SFT model (`--value_model rm` starts it from the reward model, or give a folder); the reward model scores each
answer as it was trained (prompt + answer + EOS); a KL penalty (`--kl_coef`) keeps the policy near the reference;
answers that never stop get `--missing_eos_penalty`. The SFT model is the newest one under models/ trained on
this dataset's lineage (rm_v3 <- sft_v2), the reward model the one trained on this dataset, else the newest; the
dataset's prompt template must be the one the SFT model was trained with.

Writes models/ppo-<dataset> (or --output): the policy (adapters merged), datafactory.json, ppo_rewards.png
(reward and KL over training), and report.md / report.json: for held-out prompts, the answer and its reward
before and after PPO.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from datafactory.training import (TrainingError, as_text, find_model, finish_meta, generate, held_out_prompts, load_model,
                                  load_tokenizer, output_dir, pin, resolve_dataset, run, same_template, save, score, stop_strings,
                                  write_meta)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental's import notice

# gradient_accumulation_steps stays 1: with more, TRL 1.12's PPO loop was 10x slower here (a batch of 4 x 4 took
# 100 s against 10 s for 8 x 1 on a tiny model); raise per_device_train_batch_size instead
DEFAULTS = {"learning_rate": 1e-5, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
            "num_ppo_epochs": 4, "kl_coef": 0.05, "response_length": 128, "stop_token": "eos",
            "missing_eos_penalty": 1.0, "num_sample_generations": 0, "local_rollout_forward_batch_size": 16,
            "use_peft": True, "logging_steps": 1}


@dataclass
class PPOArguments:
    reward_model: str | None = field(default=None, metadata={"help": "The reward model folder (default: found "
                                                                      "under models/)."})
    value_model: str = field(default="sft", metadata={"help": "Where the critic starts: sft, rm or a folder."})
    report_prompts: int = field(default=8, metadata={"help": "Held-out prompts answered before and after PPO."})
    max_prompt_length: int = field(default=512, metadata={"help": "Longer prompts keep their last tokens."})
    allow_template_mismatch: bool = field(default=False, metadata={"help": "Train although the dataset's prompt "
                                          "template is not the one the SFT model was trained with."})


def find_models(ds, data_args, ppo_args) -> tuple[str, str, list[str]]:
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
                    and not ppo_args.allow_template_mismatch):
                raise TrainingError(f"{ds.ref}'s prompts were rendered with another template than the one {folder} was "
                                    f"trained with ({meta['dataset']['ref']}); rebuild one of them with the same "
                                    "template, or pass --allow_template_mismatch")
        except TrainingError as e:
            if "template" in str(e):
                raise
            missing.append(f"an SFT model: `python trainers/sft.py --dataset {sft_set}` (or --model PATH)")
    rm = ppo_args.reward_model
    if rm:
        notes.append(f"reward model {rm} (--reward_model)")
    else:
        try:
            folder, _, why = find_model("rm", [ds.name, *lineage])
            rm = str(folder)
            notes.append(f"reward model {folder} ({why})")
        except TrainingError:
            missing.append(f"a reward model: `python trainers/rm.py --dataset {rm_set}` (or --reward_model PATH)")
    if missing:
        raise TrainingError(f"PPO on {ds.ref} needs " + " and ".join(missing) + " (looked in models/ for folders "
                            "with datafactory.json; `python trainers/loop.py` makes tiny ones offline)")
    return sft, rm, notes


def tokenized_prompts(ds, data_args, ppo_args, tok, exclude: set[str]):
    from datasets import Dataset

    rendered = as_text(tok, ds.split(data_args.train_split)["prompt"])
    prompts = list(dict.fromkeys(p for p in rendered if p and p not in exclude))
    if not prompts:
        raise TrainingError(f"{ds.ref} has no prompts in its {data_args.train_split} split")
    ids = [tok(p, add_special_tokens=False)["input_ids"][-ppo_args.max_prompt_length:] for p in prompts]
    return Dataset.from_dict({"input_ids": ids}), len(prompts)


def answers_with_rewards(policy, reward_model, tok, prompts, training_args, template) -> list[dict]:
    answers = generate(policy, tok, prompts, max_new_tokens=training_args.response_length, stops=stop_strings(template))
    rewards = score(reward_model, tok, prompts, [a["text"] for a in answers])
    return [{**a, "reward": round(r, 4)} for a, r in zip(answers, rewards)]


def write_report(output: Path, ds, prompts, before, after, history, notes) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{"prompt": p, "before": b["text"], "reward_before": b["reward"], "eos_before": b["eos"],
             "after": a["text"], "reward_after": a["reward"], "eos_after": a["eos"]}
            for p, b, a in zip(prompts, before, after)]
    n = len(rows) or 1
    summary = {"dataset": ds.ref, "prompts": len(rows), "models": notes,
               "mean_reward_before": round(sum(r["reward_before"] for r in rows) / n, 4),
               "mean_reward_after": round(sum(r["reward_after"] for r in rows) / n, 4),
               "training": [{k: h[k] for k in ("episode", "objective/scores", "objective/kl", "objective/rlhf_reward")
                             if k in h} for h in history if "objective/scores" in h]}
    (output / "report.json").write_text(json.dumps({**summary, "rows": rows}, ensure_ascii=False, indent=2), "utf-8")

    def cell(text):
        return (text or "(empty)").replace("|", "\\|").replace("\n", "<br>")

    lines = [f"# PPO on {ds.ref}: answers before and after", "", *[f"- {m}" for m in notes], "",
             f"Mean reward on {len(rows)} held-out prompts: {summary['mean_reward_before']:+.3f} before, "
             f"{summary['mean_reward_after']:+.3f} after.", "", "![reward and KL](ppo_rewards.png)", "",
             "| prompt | before | reward | after | reward |", "|---|---|---|---|---|"]
    for r in rows:
        question = r["prompt"].rsplit("### 명령어:", 1)[-1].split("###")[0].strip() or r["prompt"][-80:]
        lines.append(f"| {cell(question)} | {cell(r['before'])} | {r['reward_before']:+.3f} | {cell(r['after'])} | "
                     f"{r['reward_after']:+.3f} |")
    (output / "report.md").write_text("\n".join(lines) + "\n", "utf-8")

    steps = summary["training"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    x = [s.get("episode", i) for i, s in enumerate(steps)]
    axes[0].plot(x, [s["objective/scores"] for s in steps], marker=".")
    axes[0].set(title="reward-model score", xlabel="episode")
    axes[1].plot(x, [s.get("objective/kl", 0) for s in steps], marker=".", color="tab:orange")
    axes[1].set(title="KL to the reference", xlabel="episode")
    fig.suptitle(f"PPO on {ds.ref}")
    fig.tight_layout()
    fig.savefig(output / "ppo_rewards.png", dpi=100)
    plt.close(fig)
    return summary


def main(data_args, ppo_args, training_args, model_args):
    from trl import get_peft_config
    from trl.experimental.ppo import PPOTrainer
    from trl.models.utils import unwrap_model_for_generation

    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=("prompt",), stage="PPO")
    sft, rm, notes = find_models(ds, data_args, ppo_args)
    for note in notes:
        print(note, flush=True)
    output = output_dir(data_args, training_args, f"ppo-{ds.name}")
    training_args.sft_model_path, training_args.reward_model_path = sft, rm
    tok = load_tokenizer(sft, padding_side="left")  # PPO generates from left-padded prompts
    policy = load_model("causal", sft, model_args, training_args, tok)
    peft_config = get_peft_config(model_args)
    ref = None if peft_config else load_model("causal", sft, model_args, training_args, tok)
    reward_model = load_model("score", rm, model_args, training_args, tok)
    value_from = {"sft": sft, "rm": rm}.get(ppo_args.value_model, ppo_args.value_model)
    value_model = load_model("score", value_from, model_args, training_args, tok)
    if ds.conversational and not getattr(tok, "chat_template", None):
        raise TrainingError(f"{ds.ref} holds conversations, and {sft} has no chat template to render them; retrain it "
                            "with trainers/sft.py (which saves one) or build a text prompt set (ppo_v1)")
    report = as_text(tok, held_out_prompts(ds, data_args, ppo_args.report_prompts))
    train, n_prompts = tokenized_prompts(ds, data_args, ppo_args, tok, exclude=set(report) if
                                         data_args.eval_split in ds.splits else set())
    meta = write_meta(output, "ppo", ds, (data_args, ppo_args, training_args, model_args), sft_model=sft,
                      reward_model=rm, value_model=value_from)
    pin(ds, output)
    print(f"PPO on {ds.ref} ({n_prompts} prompts) -> {output}", flush=True)

    trainer = PPOTrainer(args=training_args, processing_class=tok, model=policy, ref_model=ref,
                         reward_model=reward_model, train_dataset=train, value_model=value_model,
                         peft_config=peft_config)

    def answers():  # the policy as it is now, on the held-out prompts (ZeRO-3: its weights gathered)
        with unwrap_model_for_generation(trainer.model, trainer.accelerator) as unwrapped:
            return answers_with_rewards(unwrapped.policy, trainer.reward_model, tok, report, training_args, ds.template)

    before = answers()  # with LoRA the adapters start as a no-op: this is the SFT model
    trainer.train()
    after = answers()
    with unwrap_model_for_generation(trainer.model, trainer.accelerator) as unwrapped:  # whole weights
        if trainer.accelerator.is_main_process:
            save(trainer, tok, output, model=unwrapped.policy)
    summary = write_report(output, ds, report, before, after, trainer.state.log_history, notes)
    finish_meta(output, meta, metrics={k: v for k, v in summary.items() if k != "models"})
    print(f"saved {output}; mean reward on {summary['prompts']} held-out prompts: "
          f"{summary['mean_reward_before']:+.3f} before, {summary['mean_reward_after']:+.3f} after PPO", flush=True)
    print(f"report: {output / 'report.md'}  plot: {output / 'ppo_rewards.png'}", flush=True)
    return summary


if __name__ == "__main__":
    import sys

    from trl.experimental.ppo import PPOConfig

    if any(a == "--deepspeed" or a.startswith("--deepspeed=") for a in sys.argv):
        sys.exit("error: PPO takes DeepSpeed from accelerate, not --deepspeed (TRL 1.12's PPOConfig has a world_size "
                 "field that breaks it): accelerate launch --config_file trainers/configs/accelerate_zero2.yaml "
                 "trainers/ppo.py ...")
    run(main, PPOConfig, DEFAULTS, extra=(PPOArguments,))
