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
(reward and KL over training), and report.md / report.json: held-out answers and their rewards before and after
PPO, and whether the policy moved by more than the spread across sampling seeds (see datafactory/rl.py).

PPO is TRL 1.12's (trl.experimental.ppo, the last release that has it): on a newer TRL this script says so in one
line; trainers/grpo.py and trainers/rloo.py take the same arguments on any TRL the train extra admits.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from datafactory.rl import Rewards, RLArguments, check_chat_template, find_models, measure, print_result, write_report
from datafactory.training import (TrainingError, as_text, finish_meta, follow, held_out_prompts, load_model,
                                  load_tokenizer, output_dir, pin, resolve_dataset, run, save, say, write_meta)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental's import notice

# gradient_accumulation_steps stays 1: with more, TRL 1.12's PPO loop was 10x slower here (a batch of 4 x 4 took
# 100 s against 10 s for 8 x 1 on a tiny model); raise per_device_train_batch_size instead
DEFAULTS = {"learning_rate": 1e-5, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
            "num_ppo_epochs": 4, "kl_coef": 0.05, "response_length": 128, "stop_token": "eos",
            "missing_eos_penalty": 1.0, "num_sample_generations": 0, "local_rollout_forward_batch_size": 16,
            "use_peft": True, "logging_steps": 1}
NO_PPO = ("PPO needs TRL 1.12 (trl.experimental.ppo; TRL 1.13 removed it, this is TRL {version}): pip install "
          "'trl==1.12.0' (or -e '.[train,ppo]'), or run trainers/grpo.py with the same arguments")


@dataclass
class PPOArguments:
    value_model: str = field(default="sft", metadata={"help": "Where the critic starts: sft, rm or a folder."})


def ppo_classes():
    """TRL 1.12's PPOConfig and PPOTrainer; on a newer TRL one line saying how to get them."""
    try:
        from trl.experimental.ppo import PPOConfig, PPOTrainer
    except ImportError:
        from importlib.metadata import version

        raise TrainingError(NO_PPO.format(version=version("trl"))) from None
    return PPOConfig, PPOTrainer


def tokenized_prompts(ds, data_args, rl_args, tok, exclude: set[str]):
    from datasets import Dataset

    rendered = as_text(tok, ds.split(data_args.train_split)["prompt"])
    prompts = list(dict.fromkeys(p for p in rendered if p and p not in exclude))
    if not prompts:
        raise TrainingError(f"{ds.ref} has no prompts in its {data_args.train_split} split")
    ids = [tok(p, add_special_tokens=False)["input_ids"][-rl_args.max_prompt_length:] for p in prompts]
    return Dataset.from_dict({"input_ids": ids}), len(prompts)


def main(data_args, rl_args, ppo_args, training_args, model_args):
    from trl import get_peft_config
    from trl.models.utils import unwrap_model_for_generation

    _, PPOTrainer = ppo_classes()
    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=("prompt",), stage="PPO")
    sft, rm, notes = find_models(ds, data_args, rl_args, "PPO")
    for note in notes:
        say(note)
    output = output_dir(data_args, training_args, f"ppo-{ds.name}")
    training_args.sft_model_path, training_args.reward_model_path = sft, rm
    tok = load_tokenizer(sft, padding_side="left")  # PPO generates from left-padded prompts
    check_chat_template(ds, tok, sft)
    policy = load_model("causal", sft, model_args, training_args, tok)
    peft_config = get_peft_config(model_args)
    ref = None if peft_config else load_model("causal", sft, model_args, training_args, tok)
    reward_model = load_model("score", rm, model_args, training_args, tok)
    value_from = {"sft": sft, "rm": rm}.get(ppo_args.value_model, ppo_args.value_model)
    value_model = load_model("score", value_from, model_args, training_args, tok)
    report = held_out_prompts(ds, data_args, rl_args.report_prompts)
    train, n_prompts = tokenized_prompts(ds, data_args, rl_args, tok, exclude=set(as_text(tok, report)) if
                                         data_args.eval_split in ds.splits else set())
    meta = write_meta(output, "ppo", ds, (data_args, rl_args, ppo_args, training_args, model_args), sft_model=sft,
                      reward_model=rm, value_model=value_from)
    pin(ds, output)
    say(f"PPO on {ds.ref} ({n_prompts} prompts) -> {output}")

    trainer = PPOTrainer(args=training_args, processing_class=tok, model=policy, ref_model=ref,
                         reward_model=reward_model, train_dataset=train, value_model=value_model,
                         peft_config=peft_config)
    follow(trainer, "PPO")

    rewards = Rewards(trainer.reward_model, tok, missing_eos_penalty=training_args.missing_eos_penalty or 0.0)

    def now():  # the policy as it is now, on the held-out prompts (ZeRO-3: its weights gathered)
        with unwrap_model_for_generation(trainer.model, trainer.accelerator) as unwrapped:
            return measure(unwrapped.policy, rewards, tok,
                           report, max_new_tokens=training_args.response_length, template=ds.template,
                           seeds=rl_args.report_seeds, samples=rl_args.report_samples,
                           temperature=training_args.temperature)

    before = now()  # with LoRA the adapters start as a no-op: this is the SFT model
    trainer.train()
    after = now()
    with unwrap_model_for_generation(trainer.model, trainer.accelerator) as unwrapped:  # whole weights
        if trainer.accelerator.is_main_process:
            save(trainer, tok, output, model=unwrapped.policy)
    summary = write_report(output, "ppo", ds, report, before, after, trainer.state.log_history, notes, tok)
    finish_meta(output, meta, metrics={k: v for k, v in summary.items() if k not in ("models", "sampled")})
    print_result("ppo", output, summary)
    return summary


if __name__ == "__main__":
    if any(a == "--deepspeed" or a.startswith("--deepspeed=") for a in sys.argv):
        sys.exit("error: PPO takes DeepSpeed from accelerate, not --deepspeed (TRL 1.12's PPOConfig has a world_size "
                 "field that breaks it): accelerate launch --config_file trainers/configs/accelerate_zero2.yaml "
                 "trainers/ppo.py ...")
    try:
        config = ppo_classes()[0]
    except TrainingError as e:
        sys.exit(f"error: {e}")
    run(main, config, DEFAULTS, extra=(RLArguments, PPOArguments))
