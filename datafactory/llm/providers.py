"""Providers behind one small interface: ``await provider.complete(resolved) -> (Answer, headers)``.

- ``openai``: the official SDK's ``AsyncOpenAI`` against any OpenAI-compatible ``base_url`` (OpenAI, vLLM, Ollama);
  ``endpoint: completions`` sends the conversation rendered by the role's ``chat_template`` as a prompt to
  ``/v1/completions`` (a model served without a chat template).
  Its own retries are off (``max_retries=0``): they are invisible and can bill twice on a timeout; the client loop
  retries, journaling each attempt. Errors are sorted into ``Transient`` (retried: 429, 5xx, timeouts, a broken
  body), ``Permanent`` (stored so they are not paid again: content policy, context too long, other 400s) and
  configuration errors that stop the build (401, 403, 404: a wrong key, model or URL).
- ``demo``: answers from the sample answers we wrote (``data/samples/llm_answers/*.jsonl``), found by what the
  request is about (its ``meta``: task, role, the row's text), so a changed prompt template still finds them.
- ``replay``: never called; the client answers from the store, and a miss is an error naming the request.
"""
from __future__ import annotations

import json
import math
import os
import re

from datafactory.errors import DataFactoryError
from datafactory.jsonl import BadLine, lines, records
from datafactory.llm.cost import count_messages, count_text, encoding_name
from datafactory.llm.profiles import Profile, RoleSpec
from datafactory.llm.rules import rule_score
from datafactory.llm.types import Answer, Resolved


class Transient(Exception):
    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None):
        super().__init__(detail or reason)
        self.reason, self.detail, self.retry_after = reason, detail, retry_after


class Permanent(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason, self.detail = reason, detail


class Provider:
    def __init__(self, role: str, spec: RoleSpec, profile: Profile):
        self.role, self.spec, self.profile = role, spec, profile
        self.encoding = encoding_name(spec.model or "", spec.tokenizer)

    async def complete(self, r: Resolved) -> tuple[Answer, dict]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


# -- OpenAI-compatible ------------------------------------------------------------------------------------------
class OpenAIProvider(Provider):
    def __init__(self, role: str, spec: RoleSpec, profile: Profile):
        super().__init__(role, spec, profile)
        from openai import AsyncOpenAI

        key = os.environ.get(spec.api_key_env)
        if not key:
            if spec.base_url and not spec.base_url.startswith("https://api.openai.com"):
                key = "not-needed"  # vLLM and Ollama want a non-empty key and ignore it
            else:
                raise DataFactoryError(f"role '{role}' ({profile.path}): no API key in ${spec.api_key_env}; set it "
                                       "(it is read from the environment only and never written anywhere)")
        self.client = AsyncOpenAI(api_key=key, base_url=spec.base_url, max_retries=0, timeout=spec.timeout)
        self.template = profile.chat_template(spec) if spec.endpoint == "completions" else None

    def prompt(self, messages: list[dict]) -> str:
        """``endpoint: completions``: the conversation as one prompt (see the module's doc)."""
        if self.template is not None:
            from datafactory.templates.chat import render

            return render(self.template[0], messages)
        if len(messages) == 1 and messages[0]["role"] == "user":
            return messages[0]["content"]
        raise DataFactoryError(f"role '{self.role}' (endpoint: completions) got a conversation of {len(messages)} "
                               "messages and has no chat_template to render it; name one in the profile (kullm, a "
                               ".jinja file or the model's folder)")

    async def _create(self, r: Resolved, params: dict):
        """One call: chat completions, or a completion of the rendered prompt with its answer read as a chat one."""
        if self.spec.endpoint == "chat":
            raw = await self.client.chat.completions.with_raw_response.create(
                model=self.spec.model, messages=r.request.messages, n=r.n, **params)
            return raw, raw.parse()
        params = dict(params)
        if params.pop("logprobs", None):  # the legacy endpoint takes the number of top logprobs
            params["logprobs"] = params.pop("top_logprobs", 5)
        else:
            params.pop("top_logprobs", None)
        params.pop("response_format", None)
        raw = await self.client.completions.with_raw_response.create(
            model=self.spec.model, prompt=self.prompt(r.request.messages), n=r.n, **params)
        return raw, raw.parse()

    async def complete(self, r: Resolved) -> tuple[Answer, dict]:
        import openai

        params = {k: v for k, v in r.params.items() if v is not None}
        if params.get("logprobs") and not self.spec.logprobs:
            raise DataFactoryError(f"role '{self.role}': the step asks for logprobs, which the profile says this "
                                   "endpoint does not return (logprobs: false); the judge then samples instead")
        try:
            raw, completion = await self._create(r, params)
            headers = {k.lower(): v for k, v in raw.headers.items()}
        except openai.RateLimitError as e:
            raise Transient("rate_limited", _first_line(e), _retry_after(e)) from None
        except openai.APITimeoutError as e:
            raise Transient("timeout", _first_line(e)) from None
        except openai.APIConnectionError as e:
            raise Transient("connection", _first_line(e)) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
            raise DataFactoryError(f"role '{self.role}' ({self.spec.model} at {redact(self.spec.base_url or 'api.openai.com')}) "
                                   f"was refused: HTTP {e.status_code}: {_first_line(e)}; check ${self.spec.api_key_env}, "
                                   "the model name and base_url in the profile (nothing was stored)") from None
        except openai.APIStatusError as e:
            if e.status_code in (408, 409) or e.status_code >= 500:
                raise Transient("server_error" if e.status_code >= 500 else f"http_{e.status_code}", _first_line(e),
                                _retry_after(e)) from None
            raise Permanent(_permanent_reason(e), _first_line(e)) from None
        except (openai.APIResponseValidationError, ValueError) as e:  # a body cut short or not JSON
            raise Transient("broken_response", _first_line(e)) from None
        if not hasattr(completion, "choices"):  # a 200 whose body is not a completion (a proxy's HTML page)
            raise Transient("broken_response", f"a {type(completion).__name__} where a completion belongs: "
                            f"{str(completion)[:120]!r}")
        choices = sorted(completion.choices, key=lambda c: c.index)
        texts = [(c.message.content if hasattr(c, "message") else c.text) or "" for c in choices]
        reasons = [c.finish_reason or "" for c in choices]
        if reasons and all(x == "content_filter" for x in reasons) and not any(texts):
            raise Permanent("content_policy", "the endpoint filtered the answer (finish_reason content_filter)")
        top = None
        if params.get("logprobs") and self.spec.endpoint == "completions":  # {token: logprob} per position
            top = [[{"token": t, "logprob": lp} for t, lp in ((c.logprobs.top_logprobs or [{}])[0] or {}).items()]
                   if c.logprobs else [] for c in choices]
        elif params.get("logprobs"):
            top = [[{"token": t.token, "logprob": t.logprob} for t in (c.logprobs.content[0].top_logprobs or [])]
                   if c.logprobs and c.logprobs.content else [] for c in choices]
        usage = completion.usage
        usage = ({"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens} if usage else
                 {"input_tokens": count_messages(r.request.messages, self.encoding),
                  "output_tokens": sum(count_text(t, self.encoding) for t in texts)})
        return Answer(texts, usage, 0.0, completion.model or self.spec.model, top, reasons), headers

    # -- the Batch API (half price; answers within 24 h) ------------------------------------------------------
    async def submit_batch(self, lines: list[dict], run_key: str) -> tuple[str, str]:
        """Upload the requests and create the batch; returns (batch id, input file id)."""
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
        f = await self.client.files.create(file=(f"datafactory-{run_key}.jsonl", data), purpose="batch")
        b = await self.client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                             completion_window="24h", metadata={"datafactory_run": run_key})
        return b.id, f.id

    async def find_batch(self, run_key: str) -> str | None:
        """A batch created with this run key whose id never reached the store (a crash right after create)."""
        page = await self.client.batches.list(limit=100)
        for b in page.data:
            if (b.metadata or {}).get("datafactory_run") == run_key and b.status not in ("failed", "expired", "cancelled"):
                return b.id
        return None

    async def batch_status(self, batch_id: str):
        return await self.client.batches.retrieve(batch_id)

    async def batch_lines(self, file_id: str) -> list[dict]:
        content = await self.client.files.content(file_id)
        return [json.loads(x) for x in lines(content.text) if x.strip()]

    def answer_from_body(self, body: dict, logprobs: bool) -> Answer:
        """A batch line's chat.completion body as an Answer (the same fields as a live call)."""
        choices = sorted(body.get("choices", []), key=lambda c: c.get("index", 0))
        texts = [(c.get("message") or {}).get("content") or "" for c in choices]
        top = None
        if logprobs:
            top = [[{"token": t["token"], "logprob": t["logprob"]}
                    for t in (((c.get("logprobs") or {}).get("content") or [{}])[0].get("top_logprobs") or [])]
                   for c in choices]
        u = body.get("usage") or {}
        return Answer(texts, {"input_tokens": u.get("prompt_tokens", 0), "output_tokens": u.get("completion_tokens", 0)},
                      0.0, body.get("model") or self.spec.model, top, [c.get("finish_reason") or "" for c in choices])

    async def aclose(self) -> None:
        await self.client.close()


def _first_line(e: Exception) -> str:
    return redact((str(e).strip().splitlines() or [type(e).__name__])[0][:300])


_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of any URL in it left out (``http://user:pass@host`` -> ``http://host``): a
    base_url may carry them, and errors are printed and stored."""
    return _CREDENTIALS.sub(r"\1", text)


def _retry_after(e) -> float | None:
    from datafactory.llm.limiter import retry_after

    response = getattr(e, "response", None)
    if response is None:
        return None
    return retry_after({k.lower(): v for k, v in response.headers.items()}, default=-1) if response.headers else None


def _permanent_reason(e) -> str:
    body = getattr(e, "body", None)
    code = ""
    if isinstance(body, dict):
        err = body.get("error", body)
        code = str((err or {}).get("code") or (err or {}).get("type") or "") if isinstance(err, dict) else ""
    text = f"{code} {e}".lower()
    if "context_length" in text or "maximum context" in text or "too long" in text:
        return "context_length"
    if "content_policy" in text or "content_filter" in text or "safety" in text:
        return "content_policy"
    return "bad_request" if e.status_code == 400 else f"http_{e.status_code}"


# -- the offline demo: sample answers we wrote -----------------------------------------------------------------
class DemoProvider(Provider):
    """Answers the shipped recipes' requests from ``answers/*.jsonl`` lines:

    - ``{"task": "respond", "role": "teacher", "input": <instruction>, "answers": [..]}`` (``n`` answers; one suffices for n=1)
    - ``{"task": "translate", "input": <English>, "answers": [<Korean>]}``
    - ``scores`` on a respond line answers the judge for its answers (``{<criterion>: 1-5}`` for a lone answer,
      a list of them for several; or a ``{"task": "judge", "input", "response", "scores"}`` line): a G-Eval
      call gets its first-token distribution peaked at the score (top_logprobs), or the score as text.
    - with ``unmatched: rules`` in the role, a judge request about an answer no line scores (a local model's
      own answer, in the offline loop) gets ``rules.rule_score`` for every criterion instead of an error (a
      stand-in that reads fluency, not meaning; its fraction is the expected value of the first-token distribution).
    """

    def __init__(self, role: str, spec: RoleSpec, profile: Profile):
        super().__init__(role, spec, profile)
        self.index: dict[tuple, dict] = {}
        folder = profile.answers_dir(spec)
        for f in sorted(folder.glob("*.jsonl")):
            try:
                recs = list(records(f.read_text("utf-8")))
            except BadLine as e:
                raise DataFactoryError(f"{f}, {e}") from None
            for _, rec in recs:
                self.index[self._key(rec)] = rec
                scores = rec.get("scores")
                if rec.get("task") == "respond" and scores:  # one score set per answer (or one for a lone answer)
                    for answer, sc in zip(rec.get("answers") or [], scores if isinstance(scores, list) else [scores]):
                        judged = {"task": "judge", "input": rec["input"], "response": answer, "scores": sc}
                        self.index[self._key(judged)] = judged

    @staticmethod
    def _key(meta: dict) -> tuple:
        task = meta.get("task")
        role = meta.get("role", "") if task == "respond" else ""
        return (task, role, meta.get("input", "").strip(), meta.get("response", "").strip() if task == "judge" else "")

    async def complete(self, r: Resolved) -> tuple[Answer, dict]:
        meta = {**r.request.meta, "role": r.request.role}
        rec = self.index.get(self._key(meta))
        if rec is None and meta.get("task") == "judge" and self.spec.unmatched == "rules":
            rec = {"scores": {meta.get("criterion"): rule_score(meta.get("response", ""))}, "rules": True}
        if rec is None:
            what = (meta.get("input") or "")[:60]
            raise DataFactoryError(f"the demo profile has no sample answer for {meta.get('task')} by role '{r.request.role}' "
                                   f"on \"{what}\": the demo answers only the shipped samples; use a real profile "
                                   "(--llm NAME, see profiles/openai.yaml) for other data")
        params = r.params
        top = None
        if meta.get("task") == "judge":
            score = rec["scores"].get(meta.get("criterion"))
            if score is None:
                raise DataFactoryError(f"the demo answers have no '{meta.get('criterion')}' score for \"{meta.get('input', '')[:60]}\"")
            texts = [str(int(round(score)))] * r.n
            if params.get("logprobs"):  # a rule's score is a fraction: its two neighbours weighted to it exactly
                top = [(_between if rec.get("rules") else _peaked)(score) for _ in range(r.n)]
        else:
            answers = rec.get("answers") or []
            if not answers:
                raise DataFactoryError(f"a demo answer line for \"{meta.get('input', '')[:60]}\" has no answers")
            texts = [answers[i % len(answers)] for i in range(r.n)]
        enc = self.encoding
        usage = {"input_tokens": count_messages(r.request.messages, enc),
                 "output_tokens": sum(count_text(t, enc) for t in texts)}
        return Answer(texts, usage, 0.0, "datafactory-sample-answers", top, ["stop"] * r.n), {}


def _between(score: float) -> list[dict]:
    """A first-token distribution whose expected value is ``score`` (1-5): its two neighbouring integers."""
    low = min(4, int(math.floor(score)))
    up = score - low
    return [{"token": str(k), "logprob": math.log(w)} for k, w in ((low, 1 - up), (low + 1, up)) if w > 0]


def _peaked(score: float) -> list[dict]:
    """A first-token distribution around ``score`` (0.8 on it, the rest on its neighbours), as logprobs."""
    s = int(round(score))
    weights = {k: (0.8 if k == s else 0.1 if abs(k - s) == 1 else 0.0) for k in range(1, 6)}
    total = sum(weights.values())
    return [{"token": str(k), "logprob": math.log(w / total)} for k, w in weights.items() if w > 0]


def make_provider(role: str, spec: RoleSpec, profile: Profile) -> Provider:
    if spec.provider == "openai":
        return OpenAIProvider(role, spec, profile)
    if spec.provider == "demo":
        return DemoProvider(role, spec, profile)
    raise AssertionError(spec.provider)  # replay is answered by the client from the store
