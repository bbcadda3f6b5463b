"""What the thin trainers (``trainers/*.py``) share, once: their command line, datasets by name with the version
pinned, the prompt template from the manifest, pad/EOS, model loading (LoRA, QLoRA), the metadata written beside
a trained model, finding the models a later stage needs, generation and reward scoring.

Each trainer is ``main(data_args, training_args, model_args)`` over TRL's own configs (``SFTConfig``,
``RewardConfig``, ``DPOConfig``, ``PPOConfig``) and ``ModelConfig``, parsed by ``TrlParser``: the trainer's defaults
(they fit the seed), then ``--config FILE.yaml``, then the command line. On a machine without a GPU the defaults
turn bf16 off and ``use_cpu`` on, so the same command runs (slowly) on a laptop.

A trained model's folder holds ``datafactory.json``: the stage, the dataset as ``NAME@VERSION`` with its prompt
template, the base and upstream models, every setting, the versions of the code and the libraries, and the
metrics. ``ppo.py --dataset rm_v3`` finds its SFT and reward models by reading these files under ``models/``.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from datafactory.errors import DataFactoryError, did_you_mean

META = "datafactory.json"
STAGES = ("sft", "rm", "dpo", "ppo")
# The seed's base model: Polyglot-Ko (GPT-NeoX), which KULLM fine-tuned. A Hub id needs a network; pass a folder.
DEFAULT_BASE = "EleutherAI/polyglot-ko-1.3b"


class TrainingError(DataFactoryError):
    """A trainer cannot start with these arguments or this data; the message says what to do."""


@dataclass
class DataArguments:
    """The datafactory side of a trainer's command line (TRL's own options follow it)."""

    dataset: str | None = field(default=None, metadata={"help": "NAME or NAME@VERSION of a dataset built with "
                                                                "`datafactory build NAME`."})
    model: str | None = field(default=None, metadata={"help": "The model to start from: a folder or a Hub id "
                                                              "(--model_name_or_path works too)."})
    output: str | None = field(default=None, metadata={"help": "Where the trained model goes (default: "
                                                               "models/<dataset> or models/<stage>-<dataset>)."})
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft) instead of every weight."})
    qlora: bool = field(default=False, metadata={"help": "LoRA on a 4-bit quantised model (needs a CUDA GPU "
                                                         "and bitsandbytes)."})
    train_split: str = field(default="train", metadata={"help": "The split trained on."})
    eval_split: str = field(default="test", metadata={"help": "The held-out split (metrics, reports); skipped "
                                                              "when the dataset has none."})
    data_dir: str | None = field(default=None, metadata={"help": "The store (default: the project's data/, "
                                                                 "or DATAFACTORY_DATA)."})
    chat_template: str | None = field(default=None, metadata={"help": "The chat template the model is trained "
                                      "with and saved with: a shipped name (kullm), a .jinja file or a model folder "
                                      "(default: a text dataset's own template; for a conversational one the model's "
                                      "own, else kullm)."})
    verbose: bool = field(default=False, metadata={"help": "Show the libraries' warnings and progress bars here "
                                                           "(by default they go to train.log beside the model)."})


# -- the command line -------------------------------------------------------------------------------------
def parse(config_cls, defaults: dict[str, Any], extra: tuple = (), argv: list[str] | None = None):
    """``(data_args, *extra_args, training_args, model_args)`` from the defaults, ``--config`` and ``argv``."""
    import torch
    from trl import ModelConfig, TrlParser

    gpu = torch.cuda.is_available()
    # activation checkpointing saves GPU memory; on a CPU it only costs time (transformers 5 renamed the option)
    checkpointing = ("activation_checkpointing" if "activation_checkpointing" in config_cls.__dataclass_fields__
                     else "gradient_checkpointing")
    base = {"bf16": gpu and torch.cuda.is_bf16_supported(), "use_cpu": not gpu, checkpointing: gpu,
            "report_to": "none", "save_strategy": "no", "logging_steps": 10, "seed": 42, "output_dir": None}
    parser = TrlParser((DataArguments, *extra, config_cls, ModelConfig))
    leftover = parser.set_defaults_with_config(**{**base, **defaults})
    assert not leftover, leftover

    def fail(message: str):  # argparse's error without its usage, which for TRL's configs is hundreds of lines
        parser.exit(2, f"{parser.prog}: error: {message} (`--help` lists the options)\n")

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" in argv:  # TRL opens it with no word of which file is missing
        at = argv.index("--config") + 1
        if at >= len(argv) or not Path(argv[at]).is_file():
            fail(f"--config: no such file {argv[at] if at < len(argv) else '(none given)'}")
        import yaml

        from datafactory import yamlfile

        try:  # TRL reads it too, keeping the last of two equal keys and failing on bytes that are not UTF-8
            yamlfile.safe_load(Path(argv[at]).read_text("utf-8"))
        except UnicodeDecodeError as e:
            fail(f"--config {argv[at]}: not UTF-8 at byte {e.start}; save it as UTF-8")
        except yaml.YAMLError as e:
            fail(f"--config {argv[at]}: {yamlfile.describe(e)}")
    try:
        *parsed, from_config, unknown = parser.parse_args_and_config(args=argv, return_remaining_strings=True,
                                                                     separate_remaining_strings=True)
    except ValueError as e:  # a config file that is not a mapping: TRL's words, without a traceback
        fail(str(e))
    if unknown:  # a typo: said with the option it is closest to, as argparse would (TRL raised a ValueError)
        options = [o for action in parser._actions for o in action.option_strings]
        hint = did_you_mean(unknown[0].split("=")[0], options)
        fail(f"unrecognized arguments: {' '.join(unknown)}" + (f" ({hint})" if hint else ""))
    if from_config:
        fail(f"--config: unrecognized keys {' '.join(map(str, from_config))}")
    parsed = tuple(parsed)
    data_args, model_args = parsed[0], parsed[-1]
    if not data_args.dataset:
        fail("--dataset NAME is required (see `datafactory list` for what is built)")
    if data_args.model:
        model_args.model_name_or_path = data_args.model
    if data_args.qlora:
        if not gpu:
            raise TrainingError("--qlora quantises the model to 4 bits with bitsandbytes, which needs a CUDA GPU; "
                                "on this machine use --lora (or no adapter)")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise TrainingError("--qlora needs bitsandbytes: pip install bitsandbytes") from None
        model_args.load_in_4bit = True
    if data_args.lora or data_args.qlora:
        model_args.use_peft = True
    return parsed


def output_dir(data_args, training_args, default: str) -> Path:
    """``--output``, else ``--output_dir``, else ``models/<default>`` in the project. The libraries' messages go to
    ``train.log`` there from now on (see ``LibraryLog``)."""
    out = data_args.output or training_args.output_dir
    if not out or out == "trainer_output":
        out = models_dir() / default
    training_args.output_dir = str(out)
    if LibraryLog.active is not None:
        LibraryLog.active.attach(Path(out))
    return Path(out)


# -- what a user reads: the trainer's own lines; the libraries' go to a log file ----------------------------------
class LibraryLog:
    """Without ``--verbose``, whatever the libraries write while a trainer runs (warnings, progress bars, weight
    load reports, DeepSpeed notices, TRL's log dictionaries: file descriptors 1 and 2) goes to a log file, a
    temporary one until the model's folder is known, then ``train.log`` there (``train.rank<N>.log`` for the other
    processes of a multi-GPU run). The trainer's own lines (``say``) and its errors reach the terminal."""

    active: "LibraryLog | None" = None

    def __init__(self):
        import tempfile

        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.saved = (os.dup(1), os.dup(2))
        encoding = sys.stdout.encoding or "utf-8"
        self.terminal = open(self.saved[0], "w", encoding=encoding, errors="replace", buffering=1, closefd=False)
        self.errors = open(self.saved[1], "w", encoding=encoding, errors="replace", buffering=1, closefd=False)
        self.file = tempfile.TemporaryFile()
        self.path: Path | None = None
        self._point(self.file.fileno())
        LibraryLog.active = self

    @staticmethod
    def _point(fd: int) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)

    def attach(self, folder: Path, name: str = "train.log") -> None:
        import shutil

        rank = int(os.environ.get("RANK", "0") or 0)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (name if rank == 0 else name.replace(".log", f".rank{rank}.log"))
        if path == self.path:
            return
        new = open(path, "wb")
        self._point(new.fileno())
        self.file.flush()
        self.file.seek(0)
        shutil.copyfileobj(self.file, new)
        new.flush()
        self.file.close()
        self.file, self.path = new, path

    def restore(self) -> None:
        """The terminal back on 1 and 2 (an error, a traceback, the end)."""
        if LibraryLog.active is self:
            self._point(self.saved[0])
            os.dup2(self.saved[1], 2)
            LibraryLog.active = None


def say(*parts, **kwargs) -> None:
    """A trainer's own line, on the terminal (also while the libraries write to train.log)."""
    log = LibraryLog.active
    print(*parts, file=log.terminal if log is not None else sys.stdout, flush=True, **kwargs)


def follow(trainer, stage: str) -> None:
    """A line of the trainer's progress, ours: the step, the figures that matter and the time, at most every 10% of
    the steps or 30 s (and the last step); TRL's own log dictionaries go to train.log."""
    if LibraryLog.active is None:
        return
    import time

    from transformers import TrainerCallback

    keys = ("loss", "objective/scores", "reward", "objective/kl", "kl", "rewards/margins", "rewards/accuracies",
            "accuracy", "eval_loss", "eval_accuracy", "eval_rewards/margins", "eval_rewards/accuracies")

    class Progress(TrainerCallback):
        def __init__(self):
            self.start = self.last = time.time()
            self.last_step = -1

        def on_log(self, args, state, control, logs=None, **kw):
            logs, step, total = logs or {}, state.global_step, state.max_steps or 0
            shown = [(k, logs[k]) for k in keys if isinstance(logs.get(k), (int, float))][:4]
            due = (step == total or self.last_step < 0 or time.time() - self.last >= 30
                   or (total and step - self.last_step >= max(1, total // 10)))
            if not shown or not due:
                return
            self.last, self.last_step = time.time(), step
            say(f"  {stage} step {step}/{total}  " + "  ".join(f"{k} {v:.4g}" for k, v in shown)
                + f"  ({time.time() - self.start:.0f} s)")

    trainer.add_callback(Progress())


# -- datasets by name -------------------------------------------------------------------------------------
@dataclass
class DatasetRef:
    name: str
    version: str
    manifest: dict
    data_dir: Path

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def template(self) -> dict | None:
        return self.manifest.get("template")

    @property
    def conversational(self) -> bool:
        """TRL's conversational type: prompts and answers are lists of messages (see datafactory/conversations.py)."""
        return self.manifest.get("type") == "conversational"

    @property
    def splits(self) -> list[str]:
        return list(self.manifest.get("files", {}))

    def split(self, name: str):
        from datafactory import load

        return load(self.ref, split=name, data_dir=self.data_dir)

    def lineage(self) -> list[str]:
        """This dataset's name, then the names of the datasets it was built from, nearest first."""
        from datafactory.store import Store

        names, queue, store = [self.name], [self.manifest], Store(self.data_dir)
        while queue:
            m = queue.pop(0)
            for up in (m.get("upstream") or {}).values():
                name, version = up["dataset"], up["version"]
                if name not in names:
                    names.append(name)
                    try:
                        queue.append(store.manifest(name, version))
                    except DataFactoryError:
                        pass
        return names


def resolve_dataset(ref: str, data_dir: str | None = None, *, columns: tuple[str, ...] = (),
                    stage: str = "") -> DatasetRef:
    """``NAME`` (latest) or ``NAME@VERSION``, resolved once; an unbuilt name says how to build it."""
    from datafactory import default_data_dir
    from datafactory.project import find_root
    from datafactory.store import Store

    root = Path(data_dir) if data_dir else default_data_dir()
    store = Store(root)
    name = ref.partition("@")[0]
    if not store.versions(name):
        recipes = (find_root() or Path.cwd()) / "recipes"
        from datafactory import yamlfile

        known = yamlfile.names(recipes)
        how = (f"build it first: `datafactory build {name}` (recipes/{name}.yaml)" if name in known else
               f"there is no recipe recipes/{name}.yaml either (recipes: {', '.join(known) or 'none'})")
        raise TrainingError(f"no built dataset '{name}' in {root}; {how}")
    name, version = store.resolve(ref)
    manifest = store.check(name, version)
    have = [c for c in manifest.get("schema", {})] or None
    missing = [c for c in columns if have is not None and c not in have]
    if missing:
        raise TrainingError(f"{name}@{version} ({manifest.get('format')}) has no column {', '.join(missing)}: "
                            f"{stage or 'this trainer'} needs {', '.join(columns)} (columns: {', '.join(have or [])})")
    return DatasetRef(name, version, manifest, root)


def pin(ds: DatasetRef, output: Path) -> None:
    """Keep the version a model was trained on through every ``datafactory gc``."""
    from datafactory.store import Store

    Store(ds.data_dir).pin(ds.ref, note=f"trained {project_relative(output)}")


# -- models on disk -----------------------------------------------------------------------------------------
def project_root() -> Path:
    from datafactory.project import find_root

    return find_root() or Path.cwd()


def models_dir() -> Path:
    """``DATAFACTORY_MODELS``, else ``models/`` in the project root (beside ``data/`` and ``recipes/``)."""
    env = os.environ.get("DATAFACTORY_MODELS")
    if env:
        return Path(env).expanduser()
    return project_root() / "models"


def project_relative(path: Path) -> str:
    from datafactory.project import find_root

    root = find_root()
    try:
        return str(Path(path).resolve().relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


def read_meta(folder: str | Path) -> dict | None:
    try:
        return json.loads((Path(folder) / META).read_text("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError as e:
        raise TrainingError(f"{Path(folder) / META}: not valid JSON ({e}); fix or delete it") from None


def trained_models(stage: str) -> list[tuple[Path, dict]]:
    """The model folders under ``models/`` a trainer of ``stage`` wrote, newest first."""
    root = models_dir()
    found = []
    for meta_file in sorted(root.glob(f"*/{META}")) if root.is_dir() else []:
        meta = read_meta(meta_file.parent)
        if meta and meta.get("stage") == stage and meta.get("complete"):
            found.append((meta_file.parent, meta))
    return sorted(found, key=lambda fm: fm[1].get("finished", ""), reverse=True)


def find_model(stage: str, prefer: list[str]) -> tuple[Path, dict, str]:
    """The ``stage`` model trained on the first dataset of ``prefer`` that has one, else the newest; with the
    reason it was picked. A real model comes before the offline loop's toys (``toy`` in datafactory.json), which are
    said to be toys. None found: an error naming the trainer that makes one."""
    found = trained_models(stage)
    prefer = list(dict.fromkeys(prefer))
    for models in ([fm for fm in found if not fm[1].get("toy")], [fm for fm in found if fm[1].get("toy")]):
        toy = " (a toy from trainers/loop.py)" if models and models[0][1].get("toy") else ""
        for name in prefer:
            for folder, meta in models:
                if meta.get("dataset", {}).get("name") == name:
                    return folder, meta, f"trained on {meta['dataset']['ref']}{toy}"
    models = sorted(found, key=lambda fm: bool(fm[1].get("toy")))  # newest first within each (a stable sort)
    if models:
        folder, meta = models[0]
        toy = " (a toy from trainers/loop.py)" if meta.get("toy") else ""
        return folder, meta, (f"the newest {stage.upper()} model (trained on {meta['dataset']['ref']}; none on "
                              f"{', '.join(prefer)}){toy}")
    raise TrainingError(f"no {stage.upper()} model in {models_dir()} (a folder with {META} from trainers/{stage}.py)")


def start_from_sft(ds: DatasetRef, data_args, model_args) -> None:
    """Without ``--model``: the newest SFT model trained on the dataset's lineage (else any), else the default."""
    if data_args.model:
        return
    try:
        folder, _, why = find_model("sft", ds.lineage())
        model_args.model_name_or_path = str(folder)
        say(f"starting from {folder} ({why})")
    except TrainingError:  # none trained yet
        model_args.model_name_or_path = model_args.model_name_or_path or DEFAULT_BASE


def write_meta(output: Path, stage: str, ds: DatasetRef, args: tuple, **extra) -> dict:
    """``datafactory.json`` beside the model: what it was trained on and how (never a token)."""
    import datafactory
    from datafactory.hashing import digest, file_digest

    settings = {}
    for a in args:
        d = a.to_dict() if hasattr(a, "to_dict") else asdict(a)
        settings[type(a).__name__] = {k: v for k, v in d.items() if not k.endswith("token") and "token" != k}
    meta = {
        "stage": stage,
        "dataset": {"name": ds.name, "version": ds.version, "ref": ds.ref, "format": ds.manifest.get("format"),
                    "template": ds.template},
        **extra,
        "settings": json.loads(json.dumps(settings, default=str)),
        "code_version": digest([file_digest(Path(f)) for f in (__file__, sys.argv[0]) if Path(f).is_file()])[:16],
        "versions": _versions(datafactory.__version__),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
    }
    if os.environ.get("DATAFACTORY_LOOP"):  # trained by trainers/loop.py: found after any real model, said to be a toy
        meta["toy"] = "trainers/loop.py"
    output.mkdir(parents=True, exist_ok=True)
    (output / META).write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")
    return meta


def prepare(stage: str, kind: str, ds: DatasetRef, args: tuple, output: Path, columns: tuple[str, ...]):
    """What every trainer does before it trains: the tokenizer and the model (``kind``, see ``load_model``) from
    ``--model``, the train split and the eval split (None when the dataset has none) with ``columns``, the metadata
    written (incomplete) and the dataset version pinned. Returns (tok, model, train, test, meta)."""
    data_args, training_args, model_args = args
    base = model_args.model_name_or_path
    tok = load_tokenizer(base)
    chat = use_chat_template(tok, ds, data_args)
    model = load_model(kind, base, model_args, training_args, tok)
    train = ds.split(data_args.train_split).select_columns(list(columns))
    test = ds.split(data_args.eval_split).select_columns(list(columns)) if data_args.eval_split in ds.splits else None
    meta = write_meta(output, stage, ds, args, base_model=base, chat_template=chat)
    pin(ds, output)
    return tok, model, train, test, meta


def use_chat_template(tok, ds: DatasetRef, data_args) -> dict:
    """Set the chat template the model trains with and is saved with (so vLLM, ``transformers serve`` and the
    ``transformers`` provider render prompts exactly as it learned them): ``--chat_template``; else for a text
    dataset the chat template of the template its prompts were rendered with (KULLM's); for a conversational one the
    model's own, else KULLM's. Returns what datafactory.json records."""
    from datafactory.templates.chat import load_chat_template

    if data_args.chat_template:
        text, origin = load_chat_template(data_args.chat_template, project_root())
    elif not ds.conversational and (ds.template or {}).get("chat_template"):
        text, origin = ds.template["chat_template"], f"the template of {ds.ref} ({ds.template.get('name')})"
    elif ds.conversational and getattr(tok, "chat_template", None):
        return {"from": "the model's own", "template": tok.chat_template}
    elif ds.conversational:
        text, origin = load_chat_template("kullm")
        origin = "kullm (the model has no chat template)"
    else:  # a text dataset whose template has no chat form (an inline one): the model's own, if any
        return {"from": "the model's own" if getattr(tok, "chat_template", None) else None,
                "template": getattr(tok, "chat_template", None)}
    tok.chat_template = text
    return {"from": origin, "template": text}


def training_chat_template(template: str | None) -> str | None:
    """A chat template of ours (see datafactory/templates/chat.py) with its answer marked ``{% generation %}``, as
    TRL's ``assistant_only_loss`` needs; None for another template."""
    answer = "{{- messages[ns.last + 1]['content'] + eos_token -}}"
    if not template or answer not in template or "{%- generation -%}" in template:
        return None
    return template.replace(answer, "{%- generation -%}" + answer + "{%- endgeneration -%}")


def as_text(tok, prompts: list) -> list[str]:
    """Prompts as the model reads them: text as it is, a conversation (a list of messages) rendered by the model's
    chat template with the generation prompt."""
    return [p if isinstance(p, str) else tok.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True)
            for p in prompts]


def answer_text(answer) -> str:
    """An answer column's value as text: a conversational answer is one assistant message."""
    if isinstance(answer, str) or answer is None:
        return answer or ""
    return answer[-1]["content"] if answer else ""


def train_and_check(trainer, tok, ds: DatasetRef, data_args, test) -> dict:
    """Train, evaluate on the eval split (when there is one), and check that greedy answers to held-out prompts
    stop with an EOS (SFT and DPO): the metrics."""
    follow(trainer, type(trainer).__name__.removesuffix("Trainer") or "training")
    metrics = {"train": trainer.train().metrics}
    if test is not None:
        metrics["eval"] = trainer.evaluate()
    metrics["stopping"] = stopping_check(trainer, tok, as_text(tok, held_out_prompts(ds, data_args, 8)), ds.template)
    return metrics


def finish_meta(output: Path, meta: dict, **extra) -> dict:
    meta.update(extra, complete=True, finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    (output / META).write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str), "utf-8")
    return meta


def _versions(ours: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"datafactory": ours, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# -- tokenizer and models -----------------------------------------------------------------------------------
def load_tokenizer(path: str | Path, padding_side: str = "right"):
    """The tokenizer with an EOS and a pad token. GPT-NeoX tokenizers (Polyglot-Ko, KULLM) have no pad: it
    becomes the EOS. That is safe because TRL masks padding by position (the collators' masks), never by
    token id, so the EOS that ends each completion keeps its label and the model learns to stop."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise TrainingError(f"cannot load a tokenizer from '{path}' ({str(e).splitlines()[0]}); pass --model with a "
                            "model folder (or a Hub id where there is a network)") from None
    if tok.eos_token is None:
        raise TrainingError(f"the tokenizer of '{path}' has no EOS token; a model trained with it could not learn to "
                            "stop: set eos_token in its tokenizer_config.json")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_model(kind: str, path: str | Path, model_args, training_args, tok):
    """``causal`` (a causal LM) or ``score`` (a 1-label sequence classifier: reward and value models), with
    pad/EOS set in its configs, in the training dtype, 4-bit where ``--qlora`` asked for it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    from accelerate import PartialState
    from trl import get_quantization_config

    quant = get_quantization_config(model_args)
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else (
        torch.bfloat16 if getattr(training_args, "bf16", False) else torch.float32)
    kwargs = {"dtype": getattr(torch, dtype) if isinstance(dtype, str) else dtype}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": PartialState().local_process_index})
    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForSequenceClassification
    if kind == "score":
        kwargs["num_labels"] = 1
    try:
        model = cls.from_pretrained(path, **kwargs)
    except OSError as e:
        raise TrainingError(f"cannot load a model from '{path}' ({str(e).splitlines()[0]}); pass --model with a "
                            "model folder (or a Hub id where there is a network)") from None
    model.config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.eos_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
    return model


def to_device(*models):
    """Onto this process's accelerator (a GPU where there is one), for generation and scoring outside a trainer;
    a quantised model is already placed."""
    from accelerate import PartialState

    device = PartialState().device
    for m in models:
        if not getattr(m, "is_quantized", False) and getattr(m, "hf_device_map", None) is None:
            m.to(device)
    return models[0] if len(models) == 1 else models


def save(trainer, tok, output: Path, model=None) -> None:
    """The full model (LoRA adapters merged in) and its tokenizer: a folder that loads with ``from_pretrained``.
    ``model``: a whole model to save instead of the trainer's (PPO's policy, gathered by the caller). Otherwise,
    under DeepSpeed the trainer saves (ZeRO-3 gathers the shards; LoRA adapters are saved unmerged)."""
    if model is None and trainer.is_deepspeed_enabled:
        trainer.save_model(str(output))
    else:
        model = model if model is not None else trainer.model
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.save_pretrained(output)
    tok.save_pretrained(output)


def sharded(trainer=None) -> bool:
    """ZeRO-3 holds a shard of each weight per process (models are partitioned as they load): a model cannot
    generate or score outside the trainer's own gathering."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled()


def same_template(a: dict | None, b: dict | None) -> bool:
    """Whether two manifests' templates render prompts alike (their text, not which variants the rows used)."""
    def text(t):
        return {k: v for k, v in (t or {}).items() if k.startswith("prompt") or k == "response_split"}

    return text(a) == text(b)


def stop_strings(template: dict | None) -> list[str]:
    """The template's section headers (``### 명령어:``): a model that runs on into a new turn is cut there."""
    if not template:
        return []
    text = template.get("prompt_no_input") or ""
    return [line.strip() for line in text.splitlines() if line.strip().startswith("###")]


def generate(model, tok, prompts: list[str], *, max_new_tokens: int = 128, batch_size: int = 8,
             stops: list[str] = (), sample: bool = False, temperature: float = 0.7, seed: int = 0) -> list[dict]:
    """Each prompt's answer (greedy unless ``sample``): left-padded batches, new tokens up to the first EOS,
    cut at the first ``stops`` string. ``eos`` says whether the model stopped by itself."""
    import torch

    side, tok.padding_side = tok.padding_side, "left"
    out = []
    torch.manual_seed(seed)
    model.eval()
    device = next(model.parameters()).device
    try:
        for i in range(0, len(prompts), batch_size):
            enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True).to(device)
            kwargs = {"max_new_tokens": max_new_tokens, "do_sample": sample, "pad_token_id": tok.pad_token_id,
                      "eos_token_id": tok.eos_token_id}
            if sample:
                kwargs.update(temperature=temperature, top_p=1.0, top_k=0)
            with torch.no_grad():
                seqs = model.generate(**enc, **kwargs)
            for row in seqs[:, enc["input_ids"].shape[1]:].tolist():
                end = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
                text = tok.decode(row[:end], skip_special_tokens=True)
                for s in stops:
                    text = text.split(s)[0]
                out.append({"text": text.strip(), "tokens": end, "eos": end < len(row)})
    finally:
        tok.padding_side = side
    return out


def score(reward_model, tok, prompts: list, answers: list, *, batch_size: int = 8) -> list[float]:
    """The reward of each (prompt, answer), scored as ``RewardTrainer`` trains it: prompt + answer + EOS, or for a
    conversation, the conversation and the answer rendered by the chat template (which ends the answer with the
    EOS); the value at the last token that is not padding."""
    import torch

    texts = [p + answer_text(a) + tok.eos_token if isinstance(p, str) else
             tok.apply_chat_template([*p, {"role": "assistant", "content": answer_text(a)}], tokenize=False)
             for p, a in zip(prompts, answers)]
    device = next(reward_model.parameters()).device
    reward_model.eval()
    side, tok.padding_side = tok.padding_side, "right"  # positions as in training
    out = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                out += reward_model(**enc).logits[:, 0].float().tolist()
    finally:
        tok.padding_side = side
    return out


def reward_accuracy(reward_model, tok, rows) -> dict:
    """Accuracy (chosen scored above rejected) and the margin distribution on preference rows."""
    import statistics

    prompts = list(rows["prompt"])
    chosen = score(reward_model, tok, prompts, list(rows["chosen"]))
    rejected = score(reward_model, tok, prompts, list(rows["rejected"]))
    margins = sorted(c - r for c, r in zip(chosen, rejected))
    if not margins:
        return {"pairs": 0}

    def q(p):
        return round(margins[min(len(margins) - 1, int(p * len(margins)))], 4)

    return {"pairs": len(margins), "accuracy": round(sum(m > 0 for m in margins) / len(margins), 4),
            "margin": {"mean": round(statistics.fmean(margins), 4), "p10": q(0.1), "p50": q(0.5), "p90": q(0.9),
                       "min": round(margins[0], 4), "max": round(margins[-1], 4)}}


def device_note() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU ({os.cpu_count()} cores, no GPU: bf16 off)"


def stopping_check(trainer, tok, prompts: list[str], template: dict | None, *, max_new_tokens: int = 128) -> dict:
    """Greedy answers to held-out prompts: how many stopped with an EOS and how many were empty (a model with
    pad/EOS wrong gives endless or empty answers)."""
    if sharded(trainer):
        return {"skipped": "ZeRO-3 shards the weights; run trainers/eval.py on the saved model"}
    model = trainer.model
    answers = generate(model, tok, prompts, max_new_tokens=max_new_tokens, stops=stop_strings(template))
    n = len(answers) or 1
    return {"prompts": len(answers), "stopped_with_eos": round(sum(a["eos"] for a in answers) / n, 3),
            "empty": sum(not a["text"] for a in answers), "examples": [
                {"prompt": p[-200:], "answer": a["text"], "eos": a["eos"]} for p, a in zip(prompts[:3], answers)]}


def held_out_prompts(ds: DatasetRef, data_args, n: int) -> list:
    """Up to ``n`` distinct prompts of the held-out split (of the training split when there is none): text, or
    conversations (lists of messages; ``as_text`` renders them)."""
    split = data_args.eval_split if data_args.eval_split in ds.splits else data_args.train_split
    rows = ds.split(split)
    if "prompt" in rows.column_names:
        prompts = rows["prompt"]
    else:  # whole conversations: each one up to its last answer
        prompts = [m[:max(i for i, x in enumerate(m) if x["role"] == "user") + 1] for m in rows["messages"]]
    seen: dict[str, object] = {}
    for p in prompts:
        seen.setdefault(p if isinstance(p, str) else json.dumps(p, ensure_ascii=False, sort_keys=True), p)
        if len(seen) == n:
            break
    return list(seen.values())


def run(main, config_cls, defaults: dict, extra: tuple = ()) -> None:
    """A trainer's entry point: parse, run, and turn a mistake into one ``error:`` line (exit 1). Output is UTF-8
    where the locale cannot write Hangul (a generated answer, a Korean dataset name)."""
    from datafactory.console import utf8_output

    utf8_output()
    log = None if verbose(sys.argv[1:]) else LibraryLog()
    try:
        main(*parse(config_cls, defaults, extra))
    except DataFactoryError as e:
        if log is not None:
            log.restore()
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except BaseException as e:  # a traceback, Ctrl-C, argparse's exit: on the terminal, with where the rest is
        if log is not None:
            log.restore()
            if log.path and not isinstance(e, SystemExit):
                print(f"(the libraries' messages: {log.path})", file=sys.stderr)
            elif isinstance(e, SystemExit) and not log.path:  # --help and usage errors: what they wrote
                log.file.flush()
                log.file.seek(0)
                sys.stdout.write(log.file.read().decode("utf-8", "replace"))
        raise
    if log is not None:
        log.restore()


def verbose(argv: list[str]) -> bool:
    """``--verbose`` (or ``--verbose true``) among a trainer's arguments."""
    for i, a in enumerate(argv):
        if a == "--verbose":
            nxt = argv[i + 1].lower() if i + 1 < len(argv) else ""
            return nxt not in ("false", "0", "no")
        if a.startswith("--verbose="):
            return a.split("=", 1)[1].lower() in ("true", "1", "yes")
    return False


# -- a tiny model, for tests and the offline loop ------------------------------------------------------------
def tiny_gpt_neox(folder: str | Path, texts: list[str], *, hidden: int = 64, layers: int = 2, heads: int = 4,
                  vocab_size: int = 1000, seed: int = 0) -> Path:
    """A GPT-NeoX (Polyglot-Ko's architecture) built from a config, with random weights and a byte-level BPE
    tokenizer trained on ``texts``: EOS ``<|endoftext|>``, no pad token, like Polyglot-Ko. Seconds on a CPU."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    eos = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eos],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=eos, eos_token=eos)
    folder = Path(folder)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=1024,
                           bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    return folder
