"""RLOO (Ahmadian et al. 2024, TRL's RLOOTrainer) on the prompts of any datafactory dataset with a `prompt` column,
by name: each prompt is answered `--num_generations` times, and each answer's baseline is the mean reward of the
others (leave one out). Rewards, models, options and the report are grpo.py's (see there and datafactory/rl.py).

    python trainers/rloo.py --dataset rm_v3           # finds the SFT and reward models under models/
    python trainers/rloo.py --dataset ppo_v1 --model models/sft_v2 --reward_model models/rm_v3 --num_generations 4
    python trainers/rloo.py --dataset ppo_v1 --use_vllm --vllm_mode colocate     # GPUs, generation by vLLM
    # CPU, toy scale
    python trainers/rloo.py --config trainers/configs/tiny/rloo.yaml --dataset ppo_v1

Writes models/rloo-<dataset> (or --output): the policy (adapters merged), datafactory.json, rloo_rewards.png and
report.md / report.json.
"""
from __future__ import annotations

from datafactory.rl import RewardArguments, RLArguments, train_group
from datafactory.training import run

DEFAULTS = {"learning_rate": 1e-5, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
            "num_generations": 4, "max_completion_length": 256, "beta": 0.05, "temperature": 1.0,
            "use_peft": True, "logging_steps": 1}


def main(data_args, rl_args, reward_args, training_args, model_args):
    from trl import RLOOTrainer

    return train_group("rloo", RLOOTrainer, data_args, rl_args, reward_args, training_args, model_args)


if __name__ == "__main__":
    from trl import RLOOConfig

    run(main, RLOOConfig, DEFAULTS, extra=(RLArguments, RewardArguments))
