"""The LLM client the engine hands a step (``ctx.llm``): a batch of requests in, one answer or failure each out,
nothing paid twice.

For each request, by key: an answer in the store is a cache hit (free); a stored permanent failure is returned
as that failure (not asked again); anything else is sent. Sending is async, bounded by each endpoint's
concurrency and its RPM/TPM limiter, and journaled in the store (in flight before, the answer as it arrives).
Transient errors are retried with exponential backoff and jitter, up to the role's ``max_attempts``; a 429 pauses
every worker of the endpoint for its Retry-After. Identical requests in one batch are sent once.

A build's budget (``--max-cost``) is checked before each call against what this build paid plus what is in
flight (its upper bound); when the next call would pass it, no new call is made, the calls in flight finish and
are kept, and the build stops with ``BudgetReached``. A dry run (``datafactory plan``) makes no call: it counts what
is in the store and estimates the rest (prompt tokens counted exactly, answers from the mean of stored answers
of the same model, else the profile's ``expected_output_tokens``, else ``max_tokens``).
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from dataclasses import dataclass, field

from datafactory.errors import DataFactoryError
from datafactory.llm.cost import Price, count_messages, lookup_price
from datafactory.llm.limiter import Limiter
from datafactory.llm.profiles import Profile, RoleSpec
from datafactory.llm.providers import Permanent, Transient, make_provider
from datafactory.llm.store import ResponseStore
from datafactory.llm.types import Answer, Failure, Request, Resolved, strip_reasoning

DEFAULT_MAX_TOKENS = 1024  # reserved per answer when neither the step nor the profile says
BATCH_LIMIT = 50_000  # requests per OpenAI batch (its limit); more make several batches


class BudgetReached(DataFactoryError):
    pass


@dataclass
class Budget:
    cap: float | None = None
    spent: float = 0.0
    reserved: float = 0.0

    def allows(self, estimate: float) -> bool:
        return self.cap is None or self.spent + self.reserved + estimate <= self.cap + 1e-12


@dataclass
class Usage:
    """What one step did with the LLM layer; goes into the manifest and the card."""

    requests: int = 0
    cache_hits: int = 0
    calls: int = 0  # answered now
    failed: Counter = field(default_factory=Counter)  # permanent failures by reason (stored, or stored before)
    retries: Counter = field(default_factory=Counter)  # transient failures by reason, retried
    possibly_billed_twice: int = 0  # sent again after a run died with them in flight
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    estimated: dict = field(default_factory=dict)  # a dry run: calls, input/output tokens and cost not yet paid
    roles: dict = field(default_factory=dict)  # role -> model identity

    def to_json(self) -> dict:
        out = {"requests": self.requests, "cache_hits": self.cache_hits, "calls": self.calls,
               "failed": dict(self.failed), "retries": dict(self.retries),
               "possibly_billed_twice": self.possibly_billed_twice, "input_tokens": self.input_tokens,
               "output_tokens": self.output_tokens, "cost_usd": round(self.cost, 6), "roles": self.roles}
        if self.estimated:
            out["estimated"] = self.estimated
        return out


class LLMClient:
    """One per build: the profile, the store, the budget. ``for_step`` gives a step its view (``ctx.llm``)."""

    def __init__(self, profile: Profile, store: ResponseStore, *, budget: Budget | None = None, dry_run: bool = False,
                 log=None, seed: int = 0, exact_tokens: bool = False):
        self.profile, self.store, self.dry_run = profile, store, dry_run
        self.exact_tokens = exact_tokens  # a dry run: count every prompt's tokens, not a sample of a large plan's
        self.budget = budget or Budget()
        self.log = log or (lambda msg: None)
        self.rng = random.Random(seed)
        self._prices: dict[tuple, Price] = {}
        self._local: dict[str, object] = {}  # role -> a loaded local model (transformers), once per build

    def for_step(self, where: str, progress=None) -> "StepLLM":
        return StepLLM(self, where, progress)

    def price(self, role: str, spec: RoleSpec, batch: bool = False) -> Price:
        if (role, batch) not in self._prices:
            if spec.provider in ("demo", "replay", "transformers") and spec.price is None:
                self._prices[role, batch] = Price(0.0, 0.0, spec.provider)
            else:
                self._prices[role, batch] = lookup_price(spec.model, spec.price_provider, batch=batch, override=spec.price)
        return self._prices[role, batch]


class StepLLM:
    def __init__(self, client: LLMClient, where: str, progress=None):
        self.client, self.where = client, where
        self.progress = progress or (lambda n=1, **kw: None)
        self.usage = Usage()
        self.keys: dict[str, None] = {}  # every request key this step asked, in order: what a replay needs
        self.started: float | None = None  # when the first call went out (for the rate on the progress line)
        self.inflight = 0
        self.rpm: float | None = None

    @property
    def dry_run(self) -> bool:
        """Nothing is called or stored: answers are stand-ins (``plan``, ``build --max-cost``'s estimate)."""
        return self.client.dry_run

    @property
    def at(self) -> str:
        """The prefix of this step's errors ("" inside a build: the engine names the recipe and step)."""
        return f"{self.where}: " if self.where else ""

    # -- what a step calls ----------------------------------------------------------------------------------
    def supports_logprobs(self, role: str) -> bool:
        spec = self.client.profile.role(role, self.where)
        return spec.logprobs if spec.provider != "replay" else True

    def complete(self, requests: list[Request], batch: bool = False) -> list[Answer | Failure]:
        """One answer (or failure) per request, in order. ``n`` answers from an endpoint that ignores ``n``
        (Ollama; the profile says ``supports_n: false``) are asked as ``n`` calls with consecutive seeds.
        ``batch``: the requests to OpenAI-compatible roles go through the Batch API (half price, within 24 h)."""
        c = self.client
        expanded: list[Request] = []
        groups: list[slice] = []
        specs = {role: c.profile.role(role, self.where) for role in dict.fromkeys(r.role for r in requests)}
        for r in requests:
            spec = specs[r.role]
            start = len(expanded)
            if r.n > 1 and not spec.supports_n:
                seed = r.params.get("seed", spec.params.get("seed")) or 0
                expanded += [Request(r.role, r.messages, {**r.params, "seed": seed + i}, 1, r.meta) for i in range(r.n)]
            else:
                expanded.append(r)
            groups.append(slice(start, len(expanded)))
        results = self._complete(expanded, batch)
        keep = {role: spec.reasoning == "keep" or c.dry_run for role, spec in specs.items()}  # stand-ins: no thinking
        return [self._visible(keep[r.role], results[g][0] if g.stop - g.start == 1 else _merge(results[g]))
                for r, g in zip(requests, groups)]

    @staticmethod
    def _visible(keep_reasoning: bool, answer: Answer | Failure) -> Answer | Failure:
        """The answer as the step sees it: a reasoning model's thinking left out unless the role keeps it (the
        store keeps the whole text, so changing the setting asks nothing again)."""
        if not isinstance(answer, Answer) or keep_reasoning:
            return answer
        texts = [strip_reasoning(t) for t in answer.texts]
        return answer if texts == answer.texts else dataclasses.replace(answer, texts=texts)

    def _complete(self, requests: list[Request], batch: bool = False) -> list[Answer | Failure]:
        c = self.client
        resolved = c.profile.resolve_many(requests, self.where)
        for r in {r.request.role: r for r in resolved}.values():
            spec = c.profile.role(r.request.role, self.where)
            self.usage.roles[r.request.role] = r.model
            c.price(r.request.role, spec)  # an unknown price fails here, before any call
        unique: dict[str, Resolved] = {}
        for r in resolved:
            unique.setdefault(r.key, r)
            self.keys.setdefault(r.key)
        self.usage.requests += len(resolved)
        self.progress(0, total=len(resolved))
        results: dict[str, Answer | Failure] = {}
        for key, st in c.store.statuses(unique).items():
            if st == "done":
                results[key] = Answer.from_json(c.store.get(key)["answer"], key)
                self.usage.cache_hits += 1
            elif st == "failed":
                got = c.store.get(key)
                results[key] = Failure(got["reason"], (got["answer"] or {}).get("detail", ""), key)
                self.usage.failed[got["reason"]] += 1
        hits = len(results)
        if hits:
            self.progress(hits, info=self._info())
        todo = [r for k, r in unique.items() if k not in results]
        if todo and c.dry_run:
            from datafactory.llm.cost import EXACT_UP_TO, encoding_name, estimate_many_messages

            by_encoding: dict[str, list[Resolved]] = {}
            for r in todo:
                spec = c.profile.role(r.request.role)
                by_encoding.setdefault(encoding_name(spec.model or "", spec.tokenizer), []).append(r)
            means: dict[tuple, float | None] = {}  # the store's mean answer length, asked once per model
            for enc, rs in by_encoding.items():  # the prompts counted in one batch per encoding (or a sample)
                counts, sampled = estimate_many_messages([r.request.messages for r in rs], enc,
                                                         None if c.exact_tokens else EXACT_UP_TO)
                for r, tokens in zip(rs, counts):
                    results[r.key] = self._estimate(r, tokens, means)
                if "cost_usd" in self.usage.estimated:
                    self.usage.estimated["cost_usd"] = round(self.usage.estimated["cost_usd"], 6)
                if sampled:
                    was = self.usage.estimated.get("sampled") or {"counted": 0, "requests": 0, "error": 0.0}
                    self.usage.estimated["sampled"] = {"counted": was["counted"] + sampled["counted"],
                                                       "requests": was["requests"] + sampled["requests"],
                                                       "error": round(max(was["error"], sampled["error"]), 6)}
        elif todo:
            replay = [r for r in todo if c.profile.role(r.request.role).provider == "replay"]
            if replay:
                r = replay[0]
                row = r.request.meta.get("row", "?")
                last = (r.request.messages[-1].get("content") or "")[:80] if r.request.messages else ""
                raise DataFactoryError(f"{self.at}the replay profile has no stored answer for row '{row}' "
                                       f"(role {r.request.role}, {r.model}; {len(replay)} such requests), e.g. \"{last}\"; "
                                       "import the store that answered it (datafactory llm import) or use a live profile")
            specs = {r.key: c.profile.role(r.request.role) for r in todo}
            kinds = {k: spec.provider for k, spec in specs.items()}
            # the Batch API takes chat requests: a completions role answers live
            batch_ok = {k: batch and spec.provider == "openai" and spec.endpoint == "chat" for k, spec in specs.items()}
            local = [r for r in todo if kinds[r.key] == "transformers"]
            batched = [r for r in todo if batch_ok[r.key]]
            live = [r for r in todo if kinds[r.key] == "demo" or (kinds[r.key] == "openai" and not batch_ok[r.key])]
            if local:
                self._generate_local(local, results)
            if batched:
                asyncio.run(self._batch_all(batched, results))
            if live:
                asyncio.run(self._send_all(live, results))
        return [results[r.key] for r in resolved]

    def _info(self) -> str:
        """The progress line: store hits, calls answered and in flight, tokens, cost, and the call rate
        against the endpoint's limit."""
        u = self.usage
        elapsed = max(1e-6, time.monotonic() - self.started) if self.started else 0.0
        rate = f" · {u.calls / elapsed * 60:,.0f}/min" if elapsed else ""
        limit = f" of {self.rpm:,.0f}" if rate and self.rpm else ""
        return (f"hits {u.cache_hits} · calls {u.calls} · in flight {self.inflight} · "
                f"{(u.input_tokens + u.output_tokens) / 1000:.1f}k tok · ${u.cost:.4f}{rate}{limit}")

    def _answered(self, r: Resolved, answer: Answer, price: Price) -> tuple:
        """Count an answer just received (usage, cost, the build's budget); returns the store's ``done`` arguments."""
        i, o = answer.usage.get("input_tokens", 0), answer.usage.get("output_tokens", 0)
        answer.key, answer.cost = r.key, price.cost(i, o)
        self.client.budget.spent += answer.cost
        self.usage.calls += 1
        self.usage.input_tokens += i
        self.usage.output_tokens += o
        self.usage.cost += answer.cost
        return r.key, answer.to_json(), i, o, answer.cost

    @staticmethod
    def _bounds(r: Resolved, spec: RoleSpec, encoding: str) -> tuple[int, int]:
        """(prompt tokens, the most answer tokens): what a call reserves against TPM and its cost's upper bound."""
        return (count_messages(r.request.messages, encoding),
                (r.params.get("max_tokens") or spec.expected_output_tokens or DEFAULT_MAX_TOKENS) * r.n)

    # -- a dry run ----------------------------------------------------------------------------------------
    def _estimate(self, r: Resolved, inp: int, means: dict) -> Answer:
        """A dry run's stand-in answer to ``r``, whose messages count ``inp`` tokens (``means``: what is the same for
        every request of a role and length limit, the store's mean answer length among it, filled in as asked)."""
        c = self.client
        max_tokens = r.params.get("max_tokens")
        at = (r.request.role, r.kind, r.model, max_tokens)
        if at not in means:
            spec = c.profile.role(r.request.role)
            mean = c.store.mean_output_tokens(r.kind, r.model, max_tokens)
            per = mean if mean is not None else (spec.expected_output_tokens or max_tokens or DEFAULT_MAX_TOKENS)
            if max_tokens:
                per = min(per, max_tokens)
            # a stand-in answer of about the estimated length (a score for a judge call: 4 or 5 by the key, so that
            # two answers rarely tie and a pair is kept, as a bound wants), unique per request so that the steps
            # after it (a judge of two answers) count their own requests
            means[at] = (int(round(per)), c.price(r.request.role, spec), " 답" * max(1, int(per) - 4),
                         (max_tokens or 99) <= 5)
        per, price, filler, is_score = means[at]
        out = per * r.n
        cost = price.cost(inp, out)
        e = self.usage.estimated
        e["calls"] = e.get("calls", 0) + 1
        e["input_tokens"] = e.get("input_tokens", 0) + inp
        e["output_tokens"] = e.get("output_tokens", 0) + out
        e["cost_usd"] = e.get("cost_usd", 0.0) + cost  # rounded once all are in (_complete)
        score = "4" if int(r.key[:2], 16) % 2 else "5"
        text = score if is_score else r.key[:8] + filler
        top = [[{"token": score, "logprob": 0.0}]] * r.n if r.params.get("logprobs") else None
        return Answer([text] * r.n, {"input_tokens": inp, "output_tokens": out}, cost, r.model, top, ["length"] * r.n,
                      r.key, cached=False)

    # -- a local model ------------------------------------------------------------------------------------------
    def _generate_local(self, todo: list[Resolved], results: dict) -> None:
        """Local generation in batches of the role's ``batch_size`` (requests with the same sampling parameters
        and ``n`` together), each answer stored as its batch finishes."""
        import json as _json

        from datafactory.llm.local import LocalModel, model_folder

        c = self.client
        groups: dict[tuple, list[Resolved]] = {}
        for r in todo:
            groups.setdefault((r.request.role, _json.dumps(r.params, sort_keys=True, default=str), r.n), []).append(r)
        self.started = time.monotonic()
        for (role, _, _), group in groups.items():
            spec = c.profile.role(role)
            if role not in c._local:
                c._local[role] = LocalModel(model_folder(spec, c.profile.base_dir), c.profile.chat_template(spec),
                                            raw=spec.chat_template == "none")
            model = c._local[role]
            for i in range(0, len(group), spec.batch_size):
                batch = group[i:i + spec.batch_size]
                for r in batch:
                    if c.store.mark_inflight(r.key, r.kind, r.model, _stored_request(r)):
                        self.usage.possibly_billed_twice += 1
                for r, answer in zip(batch, model.generate(batch)):
                    c.store.done(*self._answered(r, answer, c.price(role, spec)))
                    results[r.key] = answer
                self.progress(len(batch), info=self._info())

    # -- the Batch API ------------------------------------------------------------------------------------------
    async def _batch_all(self, todo: list[Resolved], results: dict) -> None:
        """One batch per role (per 50,000 requests). Its id is stored before the first poll (and the run key rides in its metadata, for
        a crash between create and that write), so a killed build resumes polling the same batch: nothing is
        submitted, or paid, twice. Answers are stored as the batch's output arrives; a line that failed with a
        5xx is given up and asked again by the next build."""
        from datafactory.hashing import digest

        c = self.client
        by_role: dict[str, list[Resolved]] = {}
        for r in todo:
            by_role.setdefault(r.request.role, []).append(r)
        chunks = [(role, group[i:i + BATCH_LIMIT]) for role, group in by_role.items()
                  for i in range(0, len(group), BATCH_LIMIT)]
        for role, group in chunks:
            spec = c.profile.role(role)
            provider = make_provider(role, spec, c.profile)
            price = c.price(role, spec, batch=True)
            keys = sorted(r.key for r in group)
            run_key = digest("batch", role, keys)[:24]
            by_key = {r.key: r for r in group}
            try:
                batch_id = c.store.open_batch(run_key) or await provider.find_batch(run_key)
                if batch_id is None:
                    estimate = sum(price.cost(*self._bounds(r, spec, provider.encoding)) for r in group)
                    if not c.budget.allows(estimate):
                        raise BudgetReached(f"{self.at}a batch of {len(group):,} requests may cost ${estimate:.4f}, over what "
                                            f"is left of the budget of ${c.budget.cap:.4f}; nothing was submitted")
                    for r in group:
                        if c.store.mark_inflight(r.key, r.kind, r.model, _stored_request(r)):
                            self.usage.possibly_billed_twice += 1
                    batch_id, file_id = await provider.submit_batch([_batch_line(r, spec.model) for r in group], run_key)
                    c.store.add_batch(batch_id, run_key, role, keys, file_id)
                    self.client.log(f"  submitted batch {batch_id}: {len(group):,} requests to {spec.model}")
                else:
                    c.store.add_batch(batch_id, run_key, role, keys, "")
                    self.client.log(f"  resuming batch {batch_id} ({len(group):,} requests)")
                while True:
                    b = await provider.batch_status(batch_id)
                    counts = b.request_counts
                    self.progress(0, info=f"batch {batch_id}: {b.status}" +
                                  (f" {counts.completed:,}/{counts.total:,}" if counts else ""))
                    if b.status in ("completed", "failed", "expired", "cancelled"):
                        break
                    await asyncio.sleep(spec.batch_poll_seconds)
                lines = []
                for file_id in (b.output_file_id, b.error_file_id):
                    if file_id:
                        lines += await provider.batch_lines(file_id)
                for line in lines:
                    r = by_key.get(line.get("custom_id"))
                    if r is None or r.key in results:
                        continue
                    response = line.get("response") or {}
                    status = response.get("status_code", 500)
                    if status == 200:
                        answer = provider.answer_from_body(response.get("body") or {}, bool(r.params.get("logprobs")))
                        c.store.done(*self._answered(r, answer, price))
                        results[r.key] = answer
                    elif 400 <= status < 500 and status not in (408, 409, 429):
                        err = ((response.get("body") or {}).get("error") or line.get("error") or {})
                        reason = "content_policy" if "content" in str(err.get("code", "")) else "bad_request"
                        c.store.failed(r.key, reason, str(err.get("message", ""))[:500])
                        self.usage.failed[reason] += 1
                        results[r.key] = Failure(reason, str(err.get("message", "")), r.key)
                    self.progress(1, info=self._info())
                c.store.finish_batch(batch_id, b.status)
            finally:
                await provider.aclose()
            missing = [r for r in group if r.key not in results]
            for r in missing:
                c.store.abandon(r.key, f"batch {batch_id}: {b.status}")
            if missing:
                raise DataFactoryError(f"{self.at}batch {batch_id} ended {b.status} with {len(missing):,} of {len(group):,} "
                                       "requests unanswered; every answer received is kept; build again to resubmit the rest")

    # -- sending --------------------------------------------------------------------------------------------
    async def _send_all(self, todo: list[Resolved], results: dict) -> None:
        c = self.client
        providers, limiters, gates = {}, {}, {}
        stop: list[BaseException] = []
        # one writer thread: each journal write and answer commit (an fsync each) happens in order, off the
        # event loop, so waiting for the disk never holds up the calls in flight
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="response-store")
        loop = asyncio.get_running_loop()

        async def write(fn, *args):
            return await loop.run_in_executor(writer, fn, *args)

        self.started = time.monotonic()
        for r in todo:
            role = r.request.role
            spec = c.profile.role(role)
            self.rpm = spec.rpm
            if role not in providers:
                providers[role] = make_provider(role, spec, c.profile)
            endpoint = (spec.provider, spec.base_url, spec.api_key_env)
            if endpoint not in limiters:
                limiters[endpoint] = Limiter(spec.rpm, spec.tpm)
                gates[endpoint] = asyncio.Semaphore(spec.concurrency)

        async def one(r: Resolved) -> None:
            role = r.request.role
            spec = c.profile.role(role)
            endpoint = (spec.provider, spec.base_url, spec.api_key_env)
            limiter, gate, provider = limiters[endpoint], gates[endpoint], providers[role]
            price = c.price(role, spec)
            prompt_tokens, answer_tokens = self._bounds(r, spec, provider.encoding)
            reserve = prompt_tokens + answer_tokens  # what the server counts against the TPM limit
            estimate = price.cost(prompt_tokens, answer_tokens)  # the most this call can cost
            last = ""
            async with gate:
                for attempt in range(spec.max_attempts):
                    if stop:
                        return
                    if not c.budget.allows(estimate):
                        stop.append(BudgetReached(
                            f"{self.at}the budget of ${c.budget.cap:.4f} is reached (${c.budget.spent:.4f} paid by "
                            "this build); every answer paid so far is kept; raise --max-cost and build again to go on"))
                        return
                    await limiter.reserve(reserve)
                    c.budget.reserved += estimate
                    if await write(c.store.mark_inflight, r.key, r.kind, r.model, _stored_request(r)):
                        self.usage.possibly_billed_twice += 1
                    self.inflight += 1
                    try:
                        answer, headers = await provider.complete(r)
                    except Transient as t:
                        c.budget.reserved -= estimate
                        limiter.reconcile(reserve, 0)
                        await write(c.store.attempt, r.key, t.reason, t.detail)
                        self.usage.retries[t.reason] += 1
                        last = f"{t.reason}: {t.detail}"
                        wait = t.retry_after if t.retry_after is not None and t.retry_after >= 0 else \
                            min(60.0, 0.5 * 2 ** attempt) * (0.5 + c.rng.random())
                        if t.reason == "rate_limited":
                            limiter.pause(wait)
                        await asyncio.sleep(wait)
                        continue
                    except Permanent as p:
                        c.budget.reserved -= estimate
                        limiter.reconcile(reserve, 0)
                        await write(c.store.failed, r.key, p.reason, p.detail)
                        self.usage.failed[p.reason] += 1
                        results[r.key] = Failure(p.reason, p.detail, r.key)
                        self.progress(1, info=self._info())
                        return
                    except DataFactoryError as e:  # refused (a wrong key, model or URL): nothing was billed
                        c.budget.reserved -= estimate
                        await write(c.store.abandon, r.key, f"refused: {e}"[:300])
                        stop.append(e)
                        return
                    except BaseException as e:
                        c.budget.reserved -= estimate
                        stop.append(e)
                        return
                    finally:
                        self.inflight -= 1
                    c.budget.reserved -= estimate
                    used = answer.usage.get("input_tokens", 0) + answer.usage.get("output_tokens", 0)
                    limiter.reconcile(reserve, used)
                    limiter.observe(headers)
                    await write(c.store.done, *self._answered(r, answer, price))
                    results[r.key] = answer
                    self.progress(1, info=self._info())
                    return
                await write(c.store.abandon, r.key, last)
                stop.append(DataFactoryError(
                    f"{self.at}a request to role '{role}' still failed after {spec.max_attempts} attempts (last: "
                    f"{last}); every answer received is kept; build again to retry, or raise max_attempts in the profile"))

        try:
            await asyncio.gather(*(one(r) for r in todo))
        finally:
            writer.shutdown(wait=True)  # every answer received is committed before this returns
            for p in providers.values():
                await p.aclose()
        if stop:
            raise stop[0]


def _batch_line(r: Resolved, model: str) -> dict:
    return {"custom_id": r.key, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": r.request.messages, "n": r.n,
                     **{k: v for k, v in r.params.items() if v is not None}}}


def _merge(parts: list[Answer | Failure]) -> Answer | Failure:
    """n one-answer calls as one n-answer result (the first failure, if any failed)."""
    failed = next((p for p in parts if isinstance(p, Failure)), None)
    if failed is not None:
        return failed
    first = parts[0]
    top = [t for p in parts for t in (p.top_logprobs or [])] if all(p.top_logprobs for p in parts) else None
    usage = {k: sum(p.usage.get(k, 0) for p in parts) for k in ("input_tokens", "output_tokens")}
    return Answer([t for p in parts for t in p.texts], usage, sum(p.cost for p in parts), first.model, top,
                  [f for p in parts for f in p.finish_reasons], first.key, all(p.cached for p in parts),
                  [p.key for p in parts[1:]])


def _stored_request(r: Resolved) -> dict:
    """What the store keeps of a request: enough to trace and replay it, never a credential."""
    return {"role": r.request.role, "messages": r.request.messages, "params": r.params, "n": r.n,
            "meta": {k: v for k, v in r.request.meta.items() if k in ("task", "row", "criterion", "step", "conversation")}}

