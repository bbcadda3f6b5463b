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

from datafactory.training import DEFAULT_BASE, finish_meta, output_dir, prepare, resolve_dataset, run, save, train_and_check

DEFAULTS = {"num_train_epochs": 3, "learning_rate": 2e-5, "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 4, "max_length": 1024, "model_name_or_path": DEFAULT_BASE}


def main(data_args, training_args, model_args):
    from trl import SFTTrainer, get_peft_config

    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=("prompt", "completion"), stage="SFT")
    output = output_dir(data_args, training_args, ds.name)
    tok, model, train, test, meta = prepare("sft", "causal", ds, (data_args, training_args, model_args), output,
                                            ("prompt", "completion"))
    print(f"SFT on {ds.ref} ({len(train)} rows) from {model_args.model_name_or_path} -> {output}", flush=True)

    trainer = SFTTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=test,
                         processing_class=tok, peft_config=get_peft_config(model_args))
    metrics = train_and_check(trainer, tok, ds, data_args, test)
    save(trainer, tok, output)
    finish_meta(output, meta, metrics=metrics)
    s = metrics["stopping"]
    print(f"saved {output}" + ("" if "skipped" in s else f"; greedy answers to {s['prompts']} held-out prompts: "
                                f"{s['stopped_with_eos']:.0%} ended with EOS, {s['empty']} empty"), flush=True)
    return metrics


if __name__ == "__main__":
    from trl import SFTConfig

    run(main, SFTConfig, DEFAULTS)
