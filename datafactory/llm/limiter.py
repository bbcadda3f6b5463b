"""Requests-per-minute and tokens-per-minute limits of one endpoint, shared by every worker.

Two token buckets refilled continuously at a safety margin under the limit (``margin``, 95% by default). A
bucket holds one second's worth (``burst``), so no sliding minute ever sees more than the limit. A call
``reserve``s one request and its prompt tokens plus ``max_tokens × n`` before it is sent (what the server
counts), waiting in FIFO order; ``reconcile`` hands back what the real usage did not need. ``observe`` lowers the
buckets to the endpoint's own ``x-ratelimit-remaining-*`` headers when it sends them (OpenAI does, vLLM and
Ollama do not), and learns the limits from ``x-ratelimit-limit-*`` when the profile gives none. After a 429
``pause`` stops every worker for the Retry-After. No library does reserve, reconcile and header feedback
together (see the LLM notes), hence this file.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping


class _Bucket:
    def __init__(self, per_minute: float, margin: float, burst: float, now: float):
        self.rate = per_minute * margin / 60.0  # per second
        self.capacity = max(1.0, self.rate * burst)
        self.level = self.capacity
        self.at = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` (at most a full bucket: one larger request may take it into debt) is there."""
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / self.rate)


class Limiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None, *, margin: float = 0.95, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.margin, self.burst, self.clock, self.sleep = margin, burst, clock, sleep
        now = clock()
        self.requests = _Bucket(rpm, margin, burst, now) if rpm else None
        self.tokens = _Bucket(tpm, margin, burst, now) if tpm else None
        self.paused_until = 0.0
        self._lock: asyncio.Lock | None = None
        self.waited = 0.0  # seconds spent waiting for capacity, for the progress line

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:  # created inside the running loop
            self._lock = asyncio.Lock()
        return self._lock

    def _refill(self) -> float:
        now = self.clock()
        for b in (self.requests, self.tokens):
            if b is not None:
                b.refill(now)
        return now

    async def reserve(self, tokens: int) -> None:
        """Wait, first come first served, until one request and ``tokens`` fit; then take them."""
        async with self.lock:
            while True:
                now = self._refill()
                wait = max(self.paused_until - now,
                           self.requests.wait_for(1) if self.requests else 0.0,
                           self.tokens.wait_for(tokens) if self.tokens else 0.0)
                if wait <= 1e-6:  # float dust: a bucket a hair under the amount is full enough
                    break
                wait = max(wait, 0.001)
                self.waited += wait
                await self.sleep(wait)
            if self.requests:
                self.requests.level -= 1
            if self.tokens:
                self.tokens.level -= tokens

    def reconcile(self, reserved: int, used: int) -> None:
        """Give back the reserved tokens the call did not use."""
        if self.tokens and reserved > used:
            self._refill()
            self.tokens.level = min(self.tokens.capacity, self.tokens.level + (reserved - used))

    def pause(self, seconds: float) -> None:
        """A 429: every worker waits ``seconds``, and the buckets start empty after it."""
        now = self._refill()
        self.paused_until = max(self.paused_until, now + seconds)
        for b in (self.requests, self.tokens):
            if b is not None:
                b.level = min(b.level, 0.0)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Follow the endpoint's own counters: learn the limits, and never hold more than it says remains."""
        get = lambda name: _number(headers.get(name))  # noqa: E731
        now = self._refill()
        for attr, unit in (("requests", "requests"), ("tokens", "tokens")):
            limit, remaining = get(f"x-ratelimit-limit-{unit}"), get(f"x-ratelimit-remaining-{unit}")
            bucket = getattr(self, attr)
            if bucket is None and limit:
                bucket = _Bucket(limit, self.margin, self.burst, now)
                setattr(self, attr, bucket)
            if bucket is not None and remaining is not None:
                bucket.level = min(bucket.level, remaining)


def _number(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def retry_after(headers: Mapping[str, str], default: float) -> float:
    """Seconds to wait after a 429 or 503: ``retry-after-ms``, else ``retry-after`` (seconds), else ``default``."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return ms / 1000.0
    s = _number(headers.get("retry-after"))
    return s if s is not None and s >= 0 else default
