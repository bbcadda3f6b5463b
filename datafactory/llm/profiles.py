"""Profiles: which model plays which role. Recipes name roles (``teacher``, ``judge``, ``translator``, ``sft``),
never models; ``--llm NAME`` picks ``profiles/NAME.yaml`` (or a path; default ``$DATAFACTORY_LLM``, else
``default``). ::

    roles:
      teacher:
        provider: openai                 # openai (any OpenAI-compatible base_url: OpenAI, vLLM, Ollama) |
                                         # transformers (a local model folder) | demo | replay
        model: gpt-4o-mini
        base_url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY      # the *name* of the variable; the key never enters a file
        params: {temperature: 0.7, max_tokens: 512}
        rpm: 500                         # limits of the endpoint (shared by roles on the same base_url and key)
        tpm: 200000
        concurrency: 16
      judge: {provider: openai, model: gpt-4o, params: {temperature: 0}, logprobs: true}
      sft:   {provider: openai, model: sft_v1, base_url: http://127.0.0.1:8000/v1, price: {input_per_mtok: 0, output_per_mtok: 0}}
      base:  {provider: openai, endpoint: completions, chat_template: models/sft_v2, model: sft_v2, base_url: ...}

``endpoint: completions`` calls ``/v1/completions`` with the conversation rendered as one prompt, for a model that
expects a rendered prompt (a server without a chat template for it): by ``chat_template`` (a shipped name, a .jinja
file or a model folder), else a one-message conversation's text as it is. The ``transformers`` provider renders with
``chat_template`` too when given (``none``: a one-message conversation's text as it is), else with the model's own.

The version id of an LLM step hashes each role's identity: provider kind, model identity (``model_id`` when two
endpoints serve different weights under one name, else ``model``) and sampling parameters; never the base URL's
credentials or the key. ``replay`` answers from the response store only (``replay_of: openai`` keeps the keys of the
answers it replays); ``demo`` answers from sample answers we wrote (``answers:`` a folder of JSONL files), for the
offline build of the shipped recipes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datafactory import yamlfile
from datafactory.errors import DataFactoryError, RecipeError, did_you_mean
from datafactory.hashing import digest, file_digest
from datafactory.llm.types import SAMPLING_PARAMS, Request, Resolved, request_key

DEFAULT_PROFILE = "default"
PROVIDERS = ("openai", "transformers", "demo", "replay")


class RoleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Literal["openai", "transformers", "demo", "replay"]
    model: str = ""
    model_id: str | None = None
    replay_of: Literal["openai", "transformers", "demo"] = "openai"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    params: dict[str, Any] = {}
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    concurrency: int = Field(default=8, ge=1, le=1024)
    timeout: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=100)
    price: dict[str, float] | None = None
    price_provider: str = "openai"
    tokenizer: Literal["o200k_base", "cl100k_base"] | None = None
    logprobs: bool = True  # the endpoint returns top_logprobs (o1/o3/gpt-5 and old Ollama do not)
    supports_n: bool = True  # Ollama ignores n: then n answers are n calls with distinct seeds
    expected_output_tokens: int | None = Field(default=None, ge=1)  # for the cost estimate before any answer exists
    batch_poll_seconds: float = Field(default=30.0, gt=0)  # how often a step with `batch: true` asks about its batch
    answers: str | None = None  # demo: the folder of sample answers
    # demo: what a judge request about an answer with no sample score gets: an error, or a rule-of-thumb score
    # (datafactory/llm/rules.py: fluency, Hangul, repetition) so the offline loop can judge a local model's answers
    unmatched: Literal["error", "rules"] = "error"
    batch_size: int = Field(default=8, ge=1, le=1024)  # transformers: prompts per generate call
    # a reasoning model's thinking before its answer (<think>...</think>: Qwen3, DeepSeek-R1; <thought>: EXAONE
    # Deep), served without a reasoning parser: left out of the answer the steps see, or kept (reasoning data).
    # The store keeps the whole text either way
    reasoning: Literal["strip", "keep"] = "strip"
    endpoint: Literal["chat", "completions"] = "chat"  # openai: /v1/chat/completions, or /v1/completions (a prompt)
    chat_template: str | None = None  # completions, transformers: how a conversation becomes the prompt text

    @model_validator(mode="after")
    def _check(self):
        bad = [k for k in self.params if k not in SAMPLING_PARAMS]
        if bad:
            hint = did_you_mean(bad[0], SAMPLING_PARAMS)
            raise ValueError(f"params.{bad[0]} is not a sampling parameter" + (f"; {hint}" if hint else
                             f" (known: {', '.join(SAMPLING_PARAMS)})"))
        if self.provider in ("openai", "replay", "transformers") and not self.model:
            raise ValueError(f"provider {self.provider} needs `model`" + (" (a local model folder)" if
                             self.provider == "transformers" else ""))
        if self.provider == "demo" and not self.answers:
            raise ValueError("provider demo needs `answers:` (a folder of sample answers)")
        if self.endpoint == "completions" and self.provider != "openai":
            raise ValueError("endpoint: completions is for provider openai (a served model)")
        if self.chat_template is not None and self.provider not in ("openai", "transformers"):
            raise ValueError(f"chat_template renders prompts for a served or local model, not for provider {self.provider}")
        if self.chat_template is not None and self.provider == "openai" and self.endpoint == "chat":
            raise ValueError("with endpoint: chat the server applies the model's own chat template; chat_template is "
                             "for endpoint: completions")
        return self

    @property
    def kind(self) -> str:
        """What the answers depend on, for the request key: replay keeps the kind it replays."""
        return self.replay_of if self.provider == "replay" else self.provider

    @property
    def identity_model(self) -> str:
        if self.provider == "demo" and self.unmatched == "rules":  # the rule's version: a new rule, new requests
            from datafactory.llm.rules import VERSION

            return f"datafactory-sample-answers+{VERSION}"
        return self.model_id or self.model or "datafactory-sample-answers"


class ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    roles: dict[str, RoleSpec] = Field(min_length=1)


class Profile:
    def __init__(self, name: str, path: Path, roles: dict[str, RoleSpec], base_dir: Path):
        self.name, self.path, self.roles, self.base_dir = name, path, roles, base_dir
        self._answers_digest: dict[str, str] = {}
        self._model_digest: dict[str, str] = {}
        self.digest_of = file_digest  # the engine hands its fingerprint cache (size and mtime remembered)

    def role(self, role: str, where: str = "") -> RoleSpec:
        if role not in self.roles:
            hint = did_you_mean(role, self.roles)
            raise DataFactoryError(f"{where + ': ' if where else ''}the LLM profile '{self.name}' ({self.path}) has no role "
                                   f"'{role}'" + (f"; {hint}" if hint else f" (roles: {', '.join(self.roles)})")
                                   + "; add it to the profile or pick another with --llm")
        return self.roles[role]

    def answers_dir(self, spec: RoleSpec) -> Path:
        p = Path(spec.answers).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def problem(self, role: str) -> str | None:
        """What would stop a role's first call, found before any step runs: an OpenAI key that is not set, an
        endpoint nothing answers at (a local server not started), a local model folder that is not there."""
        spec = self.role(role)
        if spec.provider == "openai":
            official = not spec.base_url or spec.base_url.startswith("https://api.openai.com")
            if official and not os.environ.get(spec.api_key_env):
                return (f"no API key in ${spec.api_key_env} ({self.path}); set it (it is read from the environment "
                        "only and never written anywhere)")
            if not official:
                return _unreachable(spec.base_url)
        if spec.provider == "transformers":
            from datafactory.llm.local import model_folder

            folder = model_folder(spec, self.base_dir)
            if not (folder / "config.json").is_file():
                return f"no model at {folder}; train one (trainers/sft.py) or fix `model` in {self.path}"
        return None

    def chat_template(self, spec: RoleSpec) -> tuple[str, str] | None:
        """The chat template a role renders its prompts with (text, where from), or None."""
        if spec.chat_template in (None, "none"):
            return None
        from datafactory.templates.chat import load_chat_template

        return load_chat_template(spec.chat_template, self.base_dir)

    def model_identity(self, spec: RoleSpec) -> str:
        """The model a role's answers depend on: ``model_id`` or ``model``; for a local model folder, also the
        digest of its files (a retrained model is another model); for a prompt rendered here (``endpoint:
        completions``, a ``chat_template``), how it is rendered."""
        rendering = ""
        if spec.endpoint == "completions" or spec.chat_template is not None:
            tpl = self.chat_template(spec)
            rendering = f" [{spec.endpoint}, template {digest(tpl[0])[:8] if tpl else spec.chat_template or 'none'}]"
        if spec.provider != "transformers":
            return spec.identity_model + rendering
        from datafactory.llm.local import model_digest, model_folder

        folder = model_folder(spec, self.base_dir)
        if str(folder) not in self._model_digest:
            self._model_digest[str(folder)] = f"{spec.model_id or folder.name}@{model_digest(folder, self.digest_of)}"
        return self._model_digest[str(folder)] + rendering

    def identity(self, role: str, where: str = "") -> dict:
        """What of a role enters the version id: its kind, model identity, sampling parameters and what is done with
        a reasoning model's thinking."""
        spec = self.role(role, where)
        out = {"kind": spec.kind, "model": self.model_identity(spec), "params": dict(sorted(spec.params.items())),
               "reasoning": spec.reasoning}
        if spec.provider == "demo":  # new sample answers make new data
            out["answers"] = self._demo_digest(spec)
            if spec.unmatched != "error":
                out["unmatched"] = spec.unmatched
        return out

    def _demo_digest(self, spec: RoleSpec) -> str:
        folder = self.answers_dir(spec)
        if str(folder) not in self._answers_digest:
            files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
            if not files:
                raise DataFactoryError(f"{self.path}: the demo answers folder {folder} holds no *.jsonl file")
            self._answers_digest[str(folder)] = digest([file_digest(f) for f in files])
        return self._answers_digest[str(folder)]

    def resolve_many(self, requests: list[Request], where: str = "") -> list[Resolved]:
        """Each request bound to its role's model, and its key (each role looked up once)."""
        roles: dict[str, tuple] = {}
        out = []
        for request in requests:
            bound = roles.get(request.role)
            if bound is None:
                spec = self.role(request.role, where)
                bound = roles[request.role] = (spec.kind, self.model_identity(spec), spec.params)
            kind, model, defaults = bound
            params = {**defaults, **request.params}
            out.append(Resolved(request, kind, model, params, request_key(kind, model, request.messages, params, request.n)))
        return out


def _unreachable(base_url: str) -> str | None:
    """Whether anything listens at ``base_url``'s host and port (a TCP connection, 3 s at most; nothing is sent)."""
    import socket
    from urllib.parse import urlsplit

    from datafactory.llm.providers import redact

    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "localhost", port), timeout=3).close()
    except OSError as e:
        return (f"nothing answers at {redact(base_url)} ({e.strerror or type(e).__name__}); start the server (e.g. "
                "vllm serve, transformers serve) or fix base_url in the profile")
    return None


def profile_path(name: str, profiles_dir: Path) -> Path:
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name).expanduser()
    return yamlfile.named(profiles_dir, name)


def load_profile(name: str | None, profiles_dir: Path) -> Profile:
    """``name`` (or ``$DATAFACTORY_LLM``, else ``default``): a profile name in ``profiles_dir`` or a path."""
    name = name or os.environ.get("DATAFACTORY_LLM") or DEFAULT_PROFILE
    path = profile_path(name, profiles_dir)
    if not path.exists():
        known = yamlfile.names(profiles_dir)
        hint = did_you_mean(name, known)
        raise DataFactoryError(f"no LLM profile '{name}' (looked for {path.resolve()}); "
                               + (hint if hint else f"profiles: {', '.join(known)}" if known else
                                  "create profiles/default.yaml (see profiles/openai.yaml in the datafactory repo)"))
    file = str(path)
    try:
        raw = yamlfile.safe_load(path.read_text("utf-8"))
    except OSError as e:  # a folder named like a profile, no permission
        raise RecipeError(file, "", f"cannot be read as a profile ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise RecipeError(file, "", f"not UTF-8 at byte {e.start}", "save the profile as UTF-8") from None
    except yaml.YAMLError as e:
        raise RecipeError(file, "", yamlfile.describe(e)) from None
    try:
        top = ProfileFile.model_validate(raw if isinstance(raw, dict) else {})
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(x) for x in e["loc"])
        raise RecipeError(file, key, e["msg"].removeprefix("Value error, ")) from None
    return Profile(path.stem, path, top.roles, path.resolve().parent.parent)
