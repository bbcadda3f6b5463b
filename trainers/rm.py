"""Reward model: a 1-label sequence classifier on a datafactory preference set (prompt/chosen/rejected), by name.

    # one GPU (defaults fit the seed: 1 epoch, started from the newest SFT model under models/)
    python trainers/rm.py --dataset rm_v3
    python trainers/rm.py --dataset rm_v3 --model models/sft_v2 --lora            # LoRA on a sequence classifier
    python trainers/rm.py --dataset rm_v3 --model ~/models/polyglot-ko-5.8b --qlora
    # several GPUs
    accelerate launch --num_processes 4 trainers/rm.py --dataset rm_v3 --deepspeed trainers/configs/zero2.json
    deepspeed --num_gpus 4 trainers/rm.py --dataset rm_v3 --deepspeed trainers/configs/zero3.json
    # CPU, toy scale (the offline loop)
    python trainers/rm.py --config trainers/configs/tiny/rm.yaml --dataset rm_v3

Writes models/<dataset> (or --output) with datafactory.json: the dataset version (pinned), the model it started
from, and the accuracy (chosen scored above rejected) and reward-margin distribution on the held-out split (the
seed's RM v1 reached 0.65). Scores are taken as RewardTrainer trains them: prompt + answer + EOS, last token.
"""
from __future__ import annotations

from datafactory.training import (finish_meta, follow, output_dir, prepare, resolve_dataset, reward_accuracy, run,
                                  save, say, sharded, start_from_sft, to_device)

DEFAULTS = {"num_train_epochs": 1, "learning_rate": 1e-5, "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 4, "max_length": 1024, "lora_task_type": "SEQ_CLS"}


def main(data_args, training_args, model_args):
    from trl import RewardTrainer, get_peft_config

    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=("prompt", "chosen", "rejected"),
                         stage="the reward model")
    start_from_sft(ds, data_args, model_args)  # the seed: the reward model starts from the SFT model
    base = model_args.model_name_or_path
    output = output_dir(data_args, training_args, ds.name)
    tok, model, train, test, meta = prepare("rm", "score", ds, (data_args, training_args, model_args), output,
                                            ("prompt", "chosen", "rejected"))
    say(f"reward model on {ds.ref} ({len(train)} pairs) from {base} -> {output}")

    trainer = RewardTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=test,
                            processing_class=tok, peft_config=get_peft_config(model_args))
    follow(trainer, "reward model")
    result = trainer.train()
    metrics = {"train": result.metrics}
    held_out = test if test is not None else train
    save(trainer, tok, output)
    split = data_args.eval_split if test is not None else data_args.train_split
    metrics["accuracy"] = ({"split": split, "skipped": "ZeRO-3 shards the weights: run trainers/eval.py "
                            f"--reward_model {output}"} if sharded() else
                           {"split": split, **reward_accuracy(to_device(trainer.model), tok, held_out)})
    finish_meta(output, meta, metrics=metrics)
    a = metrics["accuracy"]
    say(f"saved {output}; " + (a["skipped"] if "skipped" in a else f"accuracy on {a['split']} ({a['pairs']} pairs): "
          f"{a.get('accuracy', 0):.2f}, mean margin {a.get('margin', {}).get('mean', 0):+.3f}"))
    return metrics


if __name__ == "__main__":
    from trl import RewardConfig

    run(main, RewardConfig, DEFAULTS)
