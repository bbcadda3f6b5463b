"""Supervised fine-tuning on a datafactory SFT set (prompt/completion in the KULLM template), by dataset name.

    # one GPU (defaults fit the seed: Polyglot-Ko 1.3B, 3 epochs, loss on the answer only, bf16)
    python trainers/sft.py --dataset sft_v2 --model EleutherAI/polyglot-ko-1.3b
    python trainers/sft.py --dataset sft_v2@3f2a9c --model ~/models/polyglot-ko-5.8b --qlora   # 4-bit + LoRA
    python trainers/sft.py --dataset sft_v2 --model ~/models/polyglot-ko-1.3b --lora --lora_r 16
    # several GPUs
    accelerate launch --num_processes 4 trainers/sft.py --dataset sft_v2 --deepspeed trainers/configs/zero2.json
    deepspeed --num_gpus 4 trainers/sft.py --dataset sft_v2 --deepspeed trainers/configs/zero3.json
    # CPU, toy scale (what `python trainers/loop.py` runs)
    python trainers/sft.py --config trainers/configs/tiny/sft.yaml --dataset sft_v2 --model models/tiny-gpt-neox

Writes models/<dataset> (or --output): the model, its tokenizer, and datafactory.json (the dataset version it
was trained on, pinned against `datafactory gc`; the template; every setting; metrics; whether greedy answers to
held-out prompts stop with an EOS). Any SFTConfig/ModelConfig option of TRL works (`--help`).
"""
from __future__ import annotations

from datafactory.training import (DEFAULT_BASE, finish_meta, held_out_prompts, load_model, load_tokenizer,
                                  output_dir, pin, resolve_dataset, run, save, stopping_check, write_meta)

DEFAULTS = {"num_train_epochs": 3, "learning_rate": 2e-5, "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 4, "max_length": 1024, "model_name_or_path": DEFAULT_BASE}


def main(data_args, training_args, model_args):
    from trl import SFTTrainer, get_peft_config

    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=("prompt", "completion"), stage="SFT")
    output = output_dir(data_args, training_args, ds.name)
    tok = load_tokenizer(model_args.model_name_or_path)
    model = load_model("causal", model_args.model_name_or_path, model_args, training_args, tok)
    train = ds.split(data_args.train_split).select_columns(["prompt", "completion"])
    test = ds.split(data_args.eval_split).select_columns(["prompt", "completion"]) if data_args.eval_split in ds.splits else None
    meta = write_meta(output, "sft", ds, (data_args, training_args, model_args), base_model=model_args.model_name_or_path)
    pin(ds, output)
    print(f"SFT on {ds.ref} ({len(train)} rows) from {model_args.model_name_or_path} -> {output}", flush=True)

    trainer = SFTTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=test,
                         processing_class=tok, peft_config=get_peft_config(model_args))
    result = trainer.train()
    metrics = {"train": result.metrics}
    if test is not None:
        metrics["eval"] = trainer.evaluate()
    metrics["stopping"] = stopping_check(trainer, tok, held_out_prompts(ds, data_args, 8), ds.template)
    save(trainer, tok, output)
    finish_meta(output, meta, metrics=metrics)
    s = metrics["stopping"]
    print(f"saved {output}" + ("" if "skipped" in s else f"; greedy answers to {s['prompts']} held-out prompts: "
                                f"{s['stopped_with_eos']:.0%} ended with EOS, {s['empty']} empty"), flush=True)
    return metrics


if __name__ == "__main__":
    from trl import SFTConfig

    run(main, SFTConfig, DEFAULTS)
