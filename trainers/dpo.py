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
split's DPO metrics (reward accuracy and margins of the implicit reward), whether greedy answers stop with EOS, and
whether the model moved: the held-out margin is 0 before training (the model is its reference), and the last line
says whether it rose above 0, fell below, or stayed at 0 (nothing learned).
"""
from __future__ import annotations

from datafactory.training import (finish_meta, load_model, output_dir, prepare, resolve_dataset, run, save, say,
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
    say(f"DPO on {ds.ref} ({len(train)} pairs) from {base} -> {output}")

    trainer = DPOTrainer(model=model, ref_model=ref, args=training_args, train_dataset=train, eval_dataset=test,
                         processing_class=tok, peft_config=peft_config)
    metrics = train_and_check(trainer, tok, ds, data_args, test)
    metrics["moved"] = moved(metrics, trainer.state.log_history, data_args.eval_split if test is not None else None)
    save(trainer, tok, output)
    finish_meta(output, meta, metrics=metrics)
    say(f"saved {output}")
    say(metrics["moved"]["sentence"])
    return metrics


def moved(metrics: dict, history: list[dict], split: str | None) -> dict:
    """Whether DPO moved the model, from the implicit reward margin (beta x the log-ratio to the reference, chosen
    minus rejected): 0 before training, where the model is its reference; on the held-out split, else the last
    training log. Above 0: towards the chosen answers."""
    if split is not None:
        margin, acc, where = (metrics["eval"].get("eval_rewards/margins"), metrics["eval"].get("eval_rewards/accuracies"),
                              f"held-out ({split})")
    else:
        last = next((h for h in reversed(history) if "rewards/margins" in h), {})
        margin, acc, where = last.get("rewards/margins"), last.get("rewards/accuracies"), "last training batch"
    if margin is None:
        return {"state": "unknown", "sentence": "DPO logged no reward margin."}
    margin = float(margin)
    figures = f"{where} reward margin {margin:+.4f}" + (f", accuracy {acc:.2f}" if acc is not None else "")
    if abs(margin) < 1e-6:
        state, sentence = "unchanged", (f"The model did not move: {figures} (0 before training). Raise the learning "
                                        "rate or the number of epochs.")
    elif margin > 0:
        state, sentence = "moved", f"The model moved towards the chosen answers: {figures} (0 before training)."
    else:
        state, sentence = "wrong way", (f"The model moved away from the chosen answers: {figures} (0 before "
                                        "training).")
    return {"state": state, "margin": round(margin, 6), "accuracy": acc, "where": where, "sentence": sentence}


if __name__ == "__main__":
    from trl import DPOConfig

    run(main, DPOConfig, DEFAULTS)
