"""The ``transformers`` provider: a local model folder answers in batches (how the SFT model writes its answers).

    sft:
      provider: transformers
      model: models/sft_v2            # a folder written by trainers/sft.py (or any causal LM + tokenizer)
      params: {temperature: 0.7, top_p: 0.9, max_tokens: 256, stop: ["### 명령어:"]}
      batch_size: 8

What batched generation needs, done once here (see the LLM notes, section 7):
- left padding, and the attention mask passed to ``generate`` (right padding makes a model continue from pads);
- a pad token: the EOS where the tokenizer has none (GPT-NeoX, Polyglot-Ko, KULLM), and an explicit
  ``eos_token_id`` from the model's generation config;
- ``max_new_tokens`` (``max_tokens`` in the profile), never ``max_length``; only the new tokens are decoded,
  special tokens skipped, and the text is cut at the first ``stop`` string;
- a conversation becomes the prompt through a chat template, exactly as the model was trained (and as vLLM or
  ``transformers serve`` would render it): the role's ``chat_template`` when the profile names one; else the
  tokenizer's own (trainers/sft.py saves the one it trained with); else, for a model trained here before chat
  templates were saved, the chat template of its training set's prompt template (its ``datafactory.json``); else a
  one-message conversation is its text as it is (``chat_template: none`` asks for that). Rendered text is tokenized
  without adding special tokens (a template writes its own BOS).

Batched outputs are not bit-identical to one-at-a-time outputs in half precision, so local answers are stored
and replayed like paid ones (same keys, without the batch size). The model's identity in the version id is a
digest of its files (weights included), so a retrained model makes new data.
"""
from __future__ import annotations

from pathlib import Path

from datafactory.errors import DataFactoryError
from datafactory.hashing import digest, file_digest
from datafactory.llm.types import Answer, Resolved

WEIGHTS = ("*.safetensors", "*.bin", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
           "chat_template.jinja")


def model_folder(spec, base_dir: Path) -> Path:
    path = Path(spec.model).expanduser()
    return path if path.is_absolute() else base_dir / path


def model_digest(folder: Path, digest_of=file_digest) -> str:
    """The identity of a local model: the content digests of its weights, config and tokenizer files."""
    files = sorted({p for pattern in WEIGHTS for p in folder.glob(pattern)})
    if not files:
        raise DataFactoryError(f"{folder}: no model there (no config.json or weights); train one with "
                               "`python trainers/sft.py --dataset sft_v2 --output models/sft_v2`, or point the "
                               "profile's `model` at a model folder")
    return digest([(p.name, digest_of(p)) for p in files])[:16]


class LocalModel:
    """One loaded model and tokenizer, reused for every batch of a build."""

    def __init__(self, folder: Path, template: tuple[str, str] | None = None, raw: bool = False):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise DataFactoryError("the transformers provider needs torch and transformers: "
                                   "pip install torch==2.13.0 (CPU) or your CUDA build, then pip install -e '.[train]'") from None
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # "Loading weights" would cut through the build's own progress lines
        try:
            self.model = AutoModelForCausalLM.from_pretrained(folder)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.model.eval()
        gen = getattr(self.model, "generation_config", None)
        self.eos = (gen.eos_token_id if gen is not None and gen.eos_token_id is not None
                    else self.tokenizer.eos_token_id)
        self.raw = raw
        self.template = template[0] if template else None
        if self.template is None and not raw and not getattr(self.tokenizer, "chat_template", None):
            self.template = _trained_template(folder)

    def prompt(self, messages: list[dict]) -> tuple[str, bool]:
        """The prompt text, and whether a chat template rendered it."""
        if self.raw or (self.template is None and not getattr(self.tokenizer, "chat_template", None)):
            if len(messages) == 1 and messages[0]["role"] == "user":
                return messages[0]["content"], False
            raise DataFactoryError("a conversation of several messages for a model without a chat template; give the "
                                   "role a chat_template (kullm, a .jinja file or a model folder), or retrain the model "
                                   "with trainers/sft.py, which saves the one it trained with")
        if self.template is not None:
            from datafactory.templates.chat import render

            t = self.tokenizer
            return render(self.template, messages, eos_token=t.eos_token or "", bos_token=t.bos_token or ""), True
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), True

    def generate(self, batch: list[Resolved]) -> list[Answer]:
        """One ``generate`` call for requests with the same sampling parameters."""
        torch = self.torch
        p = batch[0].params
        n = batch[0].n
        rendered = [self.prompt(r.request.messages) for r in batch]
        texts = [t for t, _ in rendered]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not rendered[0][1])
        temperature = p.get("temperature")
        sample = temperature is not None and temperature > 0
        kwargs = {"max_new_tokens": p.get("max_tokens") or 256, "do_sample": sample, "num_return_sequences": n,
                  "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self.eos}
        if sample:
            kwargs.update(temperature=temperature, top_p=p.get("top_p") or 1.0)
        torch.manual_seed(int(p.get("seed") or 0))
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        stops = p.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        eos_ids = set(self.eos if isinstance(self.eos, list) else [self.eos]) - {None}
        answers = []
        for i, r in enumerate(batch):
            rows = new[i * n:(i + 1) * n]
            decoded, used = [], 0
            for row in rows:
                ids = row.tolist()
                ids = ids[:next((j for j, t in enumerate(ids) if t in eos_ids), len(ids))]  # up to the first EOS
                used += len(ids)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                for s in stops:
                    text = text.split(s)[0]
                decoded.append(text.strip())
            prompt_tokens = int(enc["attention_mask"][i].sum())
            answers.append(Answer(decoded, {"input_tokens": prompt_tokens, "output_tokens": used}, 0.0,
                                  str(r.model), None, ["stop"] * n))
        return answers


def _trained_template(folder: Path) -> str | None:
    """The chat template of the prompt template a model was trained on here (its ``datafactory.json``), for a model
    saved before trainers/sft.py saved chat templates; None when it names none."""
    import json

    try:
        meta = json.loads((folder / "datafactory.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    template = (meta.get("dataset") or {}).get("template") or {}
    if template.get("chat_template"):
        return template["chat_template"]
    if "prompt_input" in template and "prompt_no_input" in template:
        from datafactory.templates.chat import chat_template

        return chat_template(template)
    return None
