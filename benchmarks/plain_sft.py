"""A plain TRL SFT script, the way one is usually written: what trainers/sft.py is measured against.

    python benchmarks/plain_sft.py TRAIN.parquet MODEL_DIR OUT_DIR EPOCHS
"""
import json
import sys

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

train_file, model_dir, out, epochs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
tok = AutoTokenizer.from_pretrained(model_dir)
tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(model_dir)
train = Dataset.from_parquet(train_file).select_columns(["prompt", "completion"])
args = SFTConfig(output_dir=out, num_train_epochs=epochs, learning_rate=3e-3, per_device_train_batch_size=8,
                 gradient_accumulation_steps=1, max_length=256, bf16=False, use_cpu=True, activation_checkpointing=False,
                 report_to="none", save_strategy="no", logging_steps=1000, seed=42)
trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
result = trainer.train()
trainer.save_model(out)
print("METRICS " + json.dumps(result.metrics))
