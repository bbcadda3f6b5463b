"""DPO (Rafailov et al. 2023) on a datafactory preference set (prompt/chosen/rejected), by name: the modern
alternative to a reward model + PPO, on the same data. The policy starts from the newest SFT model under models/
trained on the dataset's lineage; the frozen reference is a copy of it (with --lora: the adapters turned off).

    python trainers/dpo.py --dataset rm_v3
    python trainers/dpo.py --dataset rm_v3 --model models/sft_v2 --lora --beta 0.1
    python trainers/dpo.py --dataset rm_v3 --model ~/models/polyglot-ko-5.8b --qlora
    # several GPUs
    accelerate launch --num_processes 4 trainers/dpo.py --dataset rm_v3 --deepspeed trainers/configs/zero2.json
    deepspeed --num_gpus 4 trainers/dpo.py --dataset rm_v3 --deepspeed trainers/configs/zero3.json
    # CPU, toy scale
    python trainers/dpo.py --config trainers/configs/tiny/dpo.yaml --dataset rm_v3

Writes models/dpo-<dataset> (or --output): the model (adapters merged), datafactory.json with the held-out
split's DPO metrics (reward accuracy and margins of the implicit reward) and whether greedy answers stop with EOS.
"""
from __future__ import annotations

from datafactory.training import (finish_meta, load_model, output_dir, prepare, resolve_dataset, run, save,
                                  start_from_sft, train_and_check)

DEFAULTS = {"num_train_epochs": 1, "learning_rate": 5e-7, "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 4, "max_length": 1024, "beta": 0.1}


def main(data_args, training_args, model_args):
    from trl import DPOTrainer, get_peft_config

    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=("prompt", "chosen", "rejected"), stage="DPO")
    start_from_sft(ds, data_args, model_args)
    base = model_args.model_name_or_path
    output = output_dir(data_args, training_args, f"dpo-{ds.name}")
    tok, model, train, test, meta = prepare("dpo", "causal", ds, (data_args, training_args, model_args), output,
                                            ("prompt", "chosen", "rejected"))
    peft_config = get_peft_config(model_args)
    ref = None if peft_config else load_model("causal", base, model_args, training_args, tok)
    print(f"DPO on {ds.ref} ({len(train)} pairs) from {base} -> {output}", flush=True)

    trainer = DPOTrainer(model=model, ref_model=ref, args=training_args, train_dataset=train, eval_dataset=test,
                         processing_class=tok, peft_config=peft_config)
    metrics = train_and_check(trainer, tok, ds, data_args, test)
    save(trainer, tok, output)
    finish_meta(output, meta, metrics=metrics)
    acc = metrics.get("eval", {}).get("eval_rewards/accuracies")
    print(f"saved {output}" + (f"; held-out reward accuracy {acc:.2f}" if acc is not None else ""), flush=True)
    return metrics


if __name__ == "__main__":
    from trl import DPOConfig

    run(main, DPOConfig, DEFAULTS)
