"""What a step asks an LLM and what comes back, and the key that makes a question paid for once.

A step builds ``Request``s (a role, chat messages, sampling parameters, ``n``) and gets back, in the same
order, one ``Answer`` or ``Failure`` each. ``meta`` carries what the request is about (the task and the row's own
text) for the offline demo provider and for lineage; it never enters the key. The key hashes what determines the
answer: the provider kind, the model identity, the messages, every sampling parameter, ``n`` and the seed. The API
key, the base URL, timeouts and batch sizes never enter it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datafactory.hashing import digest_with_messages

# sampling parameters that change an answer (and so enter the key); anything else in a profile does not
SAMPLING_PARAMS = ("temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty", "stop", "seed",
                   "logprobs", "top_logprobs", "response_format")


@dataclass(slots=True)
class Request:
    role: str
    messages: list[dict[str, str]]
    params: dict[str, Any] = field(default_factory=dict)  # over the role's defaults from the profile
    n: int = 1
    meta: dict[str, Any] = field(default_factory=dict)  # task, the row's text...: demo lookup and lineage only


@dataclass(slots=True)
class Resolved:
    """A request bound to its role's model: what is sent, and its key."""

    request: Request
    kind: str  # provider kind the answer depends on: "openai" (any OpenAI-compatible endpoint), "transformers", "demo"
    model: str  # the model identity (a profile's `model_id`, else its `model`)
    params: dict[str, Any]
    key: str

    @property
    def n(self) -> int:
        return self.request.n


def request_key(kind: str, model: str, messages: list[dict], params: dict, n: int) -> str:
    sampling = {k: params[k] for k in SAMPLING_PARAMS if params.get(k) is not None}
    return digest_with_messages(["llm-request", kind, model], messages, [sampling, n])


@dataclass(slots=True)
class Answer:
    texts: list[str]  # one per choice (n)
    usage: dict[str, int]  # input_tokens, output_tokens
    cost: float  # USD of this call (0 for a cache hit, a local model or the demo)
    model: str = ""  # as the endpoint named it
    top_logprobs: list[list[dict]] | None = None  # per choice: the first generated position's [{token, logprob}]
    finish_reasons: list[str] = field(default_factory=list)
    key: str = ""
    cached: bool = False  # came from the store, not from a call made now
    extra_keys: list[str] = field(default_factory=list)  # n answers made as n calls (an endpoint without `n`)

    @property
    def all_keys(self) -> list[str]:
        return [self.key, *self.extra_keys]

    def to_json(self) -> dict:
        return {"texts": self.texts, "usage": self.usage, "cost": self.cost, "model": self.model,
                "top_logprobs": self.top_logprobs, "finish_reasons": self.finish_reasons}

    @classmethod
    def from_json(cls, data: dict, key: str = "", cached: bool = True) -> "Answer":
        return cls(data["texts"], data.get("usage", {}), 0.0 if cached else data.get("cost", 0.0), data.get("model", ""),
                   data.get("top_logprobs"), data.get("finish_reasons", []), key, cached)


def strip_reasoning(text: str) -> str:
    """The answer after a reasoning model's thinking: what follows ``</think>`` (or ``</thought>``, EXAONE Deep)
    where the thinking opens the text, its opening tag there or in the chat template's prompt (DeepSeek-R1's
    distills, Qwen3 with thinking on). Thinking cut off before its end (``max_tokens``) leaves no answer: ""."""
    for tag in ("think", "thought"):
        end = text.find(f"</{tag}>")
        if end >= 0:
            start = text.find(f"<{tag}>", 0, end)
            if start < 0 or not text[:start].strip():
                return text[end + len(tag) + 3:].lstrip()
        elif text.lstrip().startswith(f"<{tag}>"):
            return ""
    return text


@dataclass(slots=True)
class Failure:
    """A request that failed for good (stored so it is not paid for again) or was not made (budget)."""

    reason: str  # a short counted reason: content_policy, context_length, bad_request, budget, ...
    detail: str = ""
    key: str = ""

    @property
    def all_keys(self) -> list[str]:
        return [self.key]
