"""Supervised fine-tuning on a datafactory SFT set, by dataset name: text (prompt/completion in the KULLM template)
or conversational (prompt/completion as messages, or whole `messages` conversations).

    # one GPU (defaults fit the seed: Polyglot-Ko 1.3B, 3 epochs, loss on the answer only, bf16)
    python trainers/sft.py --dataset sft_v2 --model EleutherAI/polyglot-ko-1.3b
    python trainers/sft.py --dataset sft_v2@3f2a9c --model ~/models/polyglot-ko-5.8b --qlora   # 4-bit + LoRA
    python trainers/sft.py --dataset sft_v2 --model ~/models/polyglot-ko-1.3b --lora --lora_r 16
    # several GPUs
    accelerate launch --num_processes 4 trainers/sft.py --dataset sft_v2 --deepspeed trainers/configs/zero2.json
    deepspeed --num_gpus 4 trainers/sft.py --dataset sft_v2 --deepspeed trainers/configs/zero3.json
    # CPU, toy scale (what `python trainers/loop.py` runs)
    python trainers/sft.py --config trainers/configs/tiny/sft.yaml --dataset sft_v2 --model models/tiny-gpt-neox

The loss is on the answer only: with prompt/completion rows the prompt's tokens (the conversation before the
answer) are masked (TRL's completion_only_loss); with `messages` rows every assistant turn is trained and the rest
masked (assistant_only_loss, through the chat template's {% generation %} markers). The tokenizer is saved with the
chat template the model trained with (`--chat_template`; by default a text dataset's own template, KULLM's, as a
chat template; for a conversational dataset the model's own, else KULLM's), so `transformers serve`, vLLM and the
`transformers` provider render prompts exactly as in training.

Writes models/<dataset> (or --output): the model, its tokenizer (with that chat template), and datafactory.json
(the dataset version it was trained on, pinned against `datafactory gc`; the template and chat template; every
setting; metrics; whether greedy answers to held-out prompts stop with an EOS). Any SFTConfig/ModelConfig option of
TRL works (`--help`).
"""
from __future__ import annotations

from datafactory.training import (DEFAULT_BASE, TrainingError, finish_meta, output_dir, prepare, resolve_dataset, run,
                                  save, say, train_and_check, training_chat_template)

DEFAULTS = {"num_train_epochs": 3, "learning_rate": 2e-5, "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 4, "max_length": 1024, "model_name_or_path": DEFAULT_BASE}


def main(data_args, training_args, model_args):
    from trl import SFTTrainer, get_peft_config

    messages = "messages" in resolve_dataset(data_args.dataset, data_args.data_dir).manifest.get("schema", {})
    columns = ("messages",) if messages else ("prompt", "completion")
    ds = resolve_dataset(data_args.dataset, data_args.data_dir, columns=columns, stage="SFT")
    output = output_dir(data_args, training_args, ds.name)
    tok, model, train, test, meta = prepare("sft", "causal", ds, (data_args, training_args, model_args), output, columns)
    served = tok.chat_template
    if messages:  # every assistant turn trained: the chat template must mark them
        marked = training_chat_template(served)
        if marked is None and "generation" not in (served or ""):
            raise TrainingError(f"{ds.ref} holds whole conversations (`messages`), trained on the assistant turns only, "
                                "and this model's chat template does not mark them ({% generation %}); pass "
                                "--chat_template kullm, or build the dataset as prompt/completion (format: sft)")
        tok.chat_template = marked or served
        training_args.assistant_only_loss = True
    how = ("the assistant turns the chat template marks, the rest masked (assistant_only_loss)" if messages else
           "the answer only, the conversation before it masked (completion_only_loss)" if ds.conversational else
           "the completion only, the prompt masked (completion_only_loss)")
    say(f"SFT on {ds.ref} ({len(train)} rows) from {model_args.model_name_or_path} -> {output}; loss on {how}; "
          f"chat template: {meta['chat_template']['from'] or 'none'}")

    trainer = SFTTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=test,
                         processing_class=tok, peft_config=get_peft_config(model_args))
    metrics = train_and_check(trainer, tok, ds, data_args, test)
    tok.chat_template = served  # saved without the training markers, which servers do not know
    save(trainer, tok, output)
    finish_meta(output, meta, metrics=metrics)
    s = metrics["stopping"]
    say(f"saved {output}" + ("" if "skipped" in s else f"; greedy answers to {s['prompts']} held-out prompts: "
                                f"{s['stopped_with_eos']:.0%} ended with EOS, {s['empty']} empty"))
    return metrics


if __name__ == "__main__":
    from trl import SFTConfig

    run(main, SFTConfig, DEFAULTS)
