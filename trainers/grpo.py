"""GRPO (Shao et al. 2024, TRL's GRPOTrainer) on the prompts of any datafactory dataset with a `prompt` column, by
name: each prompt is answered `--num_generations` times, and each answer is rewarded against its group's mean. The
reward is the reward model trained on the preference set (scored as it was trained), plus any rule rewards.

    python trainers/grpo.py --dataset rm_v3           # finds the SFT and reward models under models/, as ppo.py does
    python trainers/grpo.py --dataset ppo_v1 --model models/sft_v2 --reward_model models/rm_v3 --rule_rewards hangul
    python trainers/grpo.py --dataset chat_ppo_v1     # conversations, rendered with the policy's chat template
    # GPUs: generation by vLLM (pip install vllm; TRL's --use_vllm, --vllm_mode colocate or server)
    python trainers/grpo.py --dataset ppo_v1 --use_vllm --vllm_mode colocate
    accelerate launch --config_file trainers/configs/accelerate_zero2.yaml --num_processes 4 trainers/grpo.py --dataset ppo_v1
    # CPU, toy scale (the offline loop)
    python trainers/grpo.py --config trainers/configs/tiny/grpo.yaml --dataset ppo_v1

Defaults: the policy starts from the SFT model and trains LoRA adapters (`--use_peft false` for every weight); the
reference for the KL term (`--beta`) is the same model with the adapters off; answers that never stop lose
`--missing_eos_penalty`; `--rule_rewards hangul,length` adds rules (datafactory/rl.py), `--no_reward_model` uses
only them. Every TRL GRPOConfig option works (`--help`). The arguments are ppo.py's, so a PPO command runs as GRPO
by changing the script's name (PPO-only options aside).

Writes models/grpo-<dataset> (or --output): the policy (adapters merged), datafactory.json, grpo_rewards.png
(reward and KL over training), and report.md / report.json: held-out answers before and after, and whether the
policy moved by more than the spread across sampling seeds (see datafactory/rl.py).
"""
from __future__ import annotations

from datafactory.rl import RewardArguments, RLArguments, train_group
from datafactory.training import run

DEFAULTS = {"learning_rate": 1e-5, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
            "num_generations": 8, "max_completion_length": 256, "beta": 0.04, "temperature": 1.0,
            "use_peft": True, "logging_steps": 1}


def main(data_args, rl_args, reward_args, training_args, model_args):
    from trl import GRPOTrainer

    return train_group("grpo", GRPOTrainer, data_args, rl_args, reward_args, training_args, model_args)


if __name__ == "__main__":
    from trl import GRPOConfig

    run(main, GRPOConfig, DEFAULTS, extra=(RLArguments, RewardArguments))
