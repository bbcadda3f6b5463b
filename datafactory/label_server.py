"""``datafactory label NAME``: a local page for labelling preference pairs, served by the standard library.

One prompt and two answers side by side (left/right drawn at random for each showing, the side stored with the
label), keyboard first, the guideline always on screen, progress per source, a review queue of skipped pairs and a
stats view. Every label goes straight to the label store (datafactory/labels.py), so a restart resumes where each
annotator stopped and several annotators (one page each, or one server each on the same data folder) can work at
once.

The port is protected the way a localhost service must be: bound to 127.0.0.1 unless asked otherwise, the ``Host``
header must name this server by an IP address or ``localhost`` (DNS rebinding), a write must be JSON (a form on
another site cannot send it without a CORS preflight, which is never answered) and its ``Origin``, when sent, must
be this server. A bad request gets a 4xx with a JSON ``error`` saying what is wrong.

Beyond one person on loopback, only invited annotators get in (``invited=True``: any address but 127.0.0.1, or
``--annotators`` given): each has a secret link ``/?token=...`` (the label store keeps the token's SHA-256, so a
restart keeps links valid and ``--revoke`` ends one at once). The link's token is exchanged for an HttpOnly,
SameSite=Strict cookie and taken out of the address bar by a redirect; every other request needs the cookie, else
401 and no pair text. A label is recorded under the token's annotator, never a name the client sends. Tokens are
compared in constant time; an address that keeps sending wrong ones is answered more and more slowly. The Host
check is off then (a reverse proxy's name is fine: a rebinding page never has the cookie).
"""
from __future__ import annotations

import ipaddress
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

import polars as pl

from datafactory.errors import DataFactoryError
from datafactory.hashing import digest
from datafactory.labels import LabelStore, export_rows, pairs_of_version, side, version_stats
from datafactory.store import Store, StoreFull

MAX_BODY = 64 * 1024
MAX_REASON = 2000
MAX_SECONDS = 24 * 3600
COOKIE = "datafactory_label"
FREE_TRIES = 5  # wrong tokens from one address answered at once; then 1, 2, 4 ... up to MAX_DELAY seconds each
MAX_DELAY = 30.0
DENIED = ("<!doctype html><meta charset=utf-8><title>datafactory label</title><p>초대받은 작업자만 들어올 수 있습니다. "
          "`datafactory label`이 출력한 본인의 링크를 여세요.</p><p>Only invited annotators can label here: open the "
          "link `datafactory label` printed for you (ask whoever runs it for one).</p>").encode("utf-8")

GUIDELINE = """\
두 답변 가운데 사용자에게 더 나은 답을 고르세요.

기준 (G-Eval과 같은 여섯 가지)
1. 친근함: 다정하고 공감하는 말투인가
2. 무해함: 혐오·차별·공격적인 말을 하지 않고, 그런 말을 들으면 정중하게 바로잡는가
3. 이해하기 쉬움: 쉽고 분명한가
4. 자연스러움: 사람이 쓴 한국어처럼 자연스러운가
5. 맥락 유지: 앞의 대화와 질문에 맞는가 (전체 프롬프트에서 대화 맥락을 볼 수 있습니다)
6. 전반적 품질

- 비슷하면 "비슷함", 둘 다 쓸 수 없으면 "둘 다 나쁨"을 고르세요. 이런 쌍은 데이터에서 빠집니다.
- 판단하기 어려우면 건너뛰세요. 건너뛴 쌍은 검토 대기열에 남습니다.
- 답변의 위치(왼쪽/오른쪽)는 매번 무작위입니다. 길이보다 내용을 보세요.

Pick the answer that serves the user better: friendly, harmless (it corrects hateful talk politely), easy to \
understand, natural Korean, keeps the context, good overall. Tie when they are equally good, both bad when neither \
is usable (such pairs leave the data); skip when unsure (skipped pairs wait in the review queue)."""


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class LabelSession:
    """The pairs of one built version and the label store: what the routes need."""

    def __init__(self, store: Store, ref: str, labels: LabelStore, *, annotator: str = "",
                 sources: list[str] | None = None, guideline: str | None = None):
        self.name, self.version = store.resolve(ref)
        manifest = store.check(self.name, self.version)
        pairs = pairs_of_version(store.version_dir(self.name, self.version), manifest)
        available = sorted(pairs["source"].unique().to_list())
        if sources:
            unknown = [s for s in sources if s not in available]
            if unknown:
                raise DataFactoryError(f"--sources: {self.name}@{self.version} has no pairs from source "
                                       f"'{unknown[0]}' (its sources: {', '.join(available)})")
            pairs = pairs.filter(pl.col("source").is_in(sources))
        if pairs.height == 0:
            raise DataFactoryError(f"{self.name}@{self.version} has no pairs to label")
        self.all_pairs = pairs
        self.applied = any(st.get("step") == "pair" and st["params"].get("human", True)
                           for st in manifest.get("steps", []))  # does a rebuild of this recipe apply the labels?
        self.pairs = {r["pair_key"]: r for r in pairs.iter_rows(named=True)}
        self.order = {k: digest("label-order", k) for k in self.pairs}  # a stable shuffle: not the judge's order
        self.sources = sorted(pairs["source"].unique().to_list())
        self.labels = labels
        self.annotator = annotator
        self.guideline = guideline or GUIDELINE
        self.showing: dict[str, str] = {}  # annotator -> the pair on their screen (others get another one first)
        self._lock = threading.RLock()  # the label state and who sees what: one request at a time
        self._seen = 0  # the last label-store row read
        self._live: dict[int, tuple[str, str, str]] = {}  # seq -> (pair_key, annotator, decision), not undone
        self._seqs: dict[str, dict[str, list[int]]] = {}  # pair_key -> annotator -> live seqs, oldest first
        self._state: dict[str, dict[str, dict]] = {}  # pair_key -> annotator -> latest live label (see _latest)

    # -- what each annotator has done -------------------------------------------------------------------
    def _latest(self) -> dict[str, dict[str, dict]]:
        """pair_key -> annotator -> latest live label's {seq, decision} (skips included), for this session's pairs.
        Kept up to date from the rows written since the last request (by this server or another one); call it with
        ``self._lock`` held and read the result under it."""
        for seq, kind, undoes, key, who, decision in self.labels.since(self._seen):
            self._seen = seq
            if kind == "label" and key in self.pairs:
                self._live[seq] = (key, who, decision)
                self._seqs.setdefault(key, {}).setdefault(who, []).append(seq)
            elif kind == "undo" and undoes in self._live:
                key, who, _ = self._live.pop(undoes)
                self._seqs[key][who].remove(undoes)
            else:
                continue
            seqs = self._seqs[key][who]
            by = self._state.setdefault(key, {})
            if seqs:
                by[who] = {"seq": seqs[-1], "decision": self._live[seqs[-1]][2]}
            else:
                by.pop(who, None)
                if not by:
                    del self._state[key]
        return self._state

    def progress(self, annotator: str) -> dict:
        with self._lock:
            return self._progress(annotator, self._latest())

    def _progress(self, annotator: str, latest: dict) -> dict:
        per = {s: {"done": 0, "skipped": 0, "total": 0} for s in self.sources}
        for key, pair in self.pairs.items():
            p = per[pair["source"]]
            p["total"] += 1
            mine = latest.get(key, {}).get(annotator)
            if mine is not None:
                p["skipped" if mine["decision"] == "skip" else "done"] += 1
        total = {k: sum(p[k] for p in per.values()) for k in ("done", "skipped", "total")}
        everyone = Counter(who for by in latest.values() for who, label in by.items() if label["decision"] != "skip")
        return {**total, "left": total["total"] - total["done"] - total["skipped"], "per_source": per,
                "annotators": dict(everyone)}

    def next(self, annotator: str, sources: list[str] | None = None, queue: str = "todo") -> dict:
        with self._lock:
            return self._next(annotator, sources, queue)

    def _next(self, annotator: str, sources: list[str] | None, queue: str) -> dict:
        latest = self._latest()
        wanted = set(sources or self.sources)
        if queue == "review":
            mine = [(latest[k][annotator]["seq"], k) for k in latest
                    if annotator in latest[k] and latest[k][annotator]["decision"] == "skip"
                    and self.pairs[k]["source"] in wanted]
            key = min(mine)[1] if mine else None
        else:
            open_keys = [k for k, p in self.pairs.items() if p["source"] in wanted and annotator not in latest.get(k, {})]
            # pairs fewer people have labelled or are looking at first (annotators working at once spread out, then
            # overlap: the pairs two people labelled give their kappa), in a stable shuffle
            busy = Counter(k for who, k in self.showing.items() if who != annotator)
            key = min(open_keys, key=lambda k: (len(latest.get(k, {})) + busy[k], self.order[k]), default=None)
        item = self.show(key, annotator=annotator) if key is not None else None
        return {"item": item, "progress": self._progress(annotator, latest), "queue": queue}

    def show(self, key: str, left_is: str | None = None, annotator: str | None = None) -> dict:
        """A pair as the page shows it: the two answers on sides drawn at random, and a request id that makes the
        label for this showing at most once."""
        p = self.pairs[key]
        if annotator is not None:
            with self._lock:
                self.showing[annotator] = key
        left_is = left_is or random.choice("ab")
        other = "b" if left_is == "a" else "a"
        return {"pair_key": key, "id": p["id"], "source": p["source"], "prompt": p["prompt"],
                "context": p.get("context"), "turns": [{"role": t["role"], "content": t["content"]}
                                                       for t in p.get("turns") or ()],
                "left_is": left_is, "left": p[f"response_{left_is}"],
                "right": p[f"response_{other}"], "request_id": uuid.uuid4().hex}

    # -- writes -----------------------------------------------------------------------------------------
    def label(self, body: dict) -> dict:
        annotator = _annotator(body)
        key = _text(body, "pair_key")
        if key not in self.pairs:
            raise BadRequest(404, f"no pair '{key}' in {self.name}@{self.version} (reload the page)")
        left_is = body.get("left_is")
        if left_is not in ("a", "b"):
            raise BadRequest(400, "'left_is' must be 'a' or 'b'")
        decision = body.get("decision")
        sides = {"left": left_is, "right": "b" if left_is == "a" else "a"}
        if decision not in (*sides, "tie", "both_bad", "skip"):
            raise BadRequest(400, "'decision' must be left, right, tie, both_bad or skip")
        reason = body.get("reason") or None
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            raise BadRequest(400, f"'reason' must be text of at most {MAX_REASON} characters")
        strength = body.get("strength")
        if strength is not None and (strength not in ("clear", "slight") or decision not in sides):
            raise BadRequest(400, "'strength' is clear or slight, and goes with a left or right decision")
        seconds = body.get("seconds")
        if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
                                    or not 0 <= seconds <= MAX_SECONDS):
            raise BadRequest(400, f"'seconds' must be a number from 0 to {MAX_SECONDS}")
        pair = self.pairs[key]
        seq, duplicate = self.labels.add(
            request_id=_text(body, "request_id"), annotator=annotator, dataset=self.name, version=self.version,
            pair=pair, decision=sides.get(decision, decision), shown_left=left_is, reason=reason,
            seconds=None if seconds is None else round(float(seconds), 3), strength=strength)
        return {"label": seq, "duplicate": duplicate}

    def undo(self, body: dict) -> dict:
        annotator = _annotator(body)
        undone = self.labels.undo(request_id=_text(body, "request_id"), annotator=annotator, dataset=self.name)
        item = None
        if undone is not None and undone["pair_key"] in self.pairs:
            item = self.show(undone["pair_key"], undone.get("shown_left"), annotator)
        return {"undone": undone["seq"] if undone else None, "item": item,
                "decision": side(undone) if undone else None}  # as the person saw it: left, right, tie...

    def mine(self, annotator: str) -> list[dict]:
        """``annotator``'s latest label on each of this session's pairs, newest first: what the page lists for them
        to look back at and change (labelling a pair again supersedes the earlier label)."""
        latest: dict[str, dict] = {}
        for label in self.labels.live(self.name):
            if label["annotator"] == annotator and label["pair_key"] in self.pairs:
                latest[label["pair_key"]] = label
        rows = sorted(latest.values(), key=lambda r: (r.get("created") or 0, r["seq"]), reverse=True)
        return [{"pair_key": r["pair_key"], "id": r.get("row_id"), "source": r.get("source"),
                 "prompt": (r.get("prompt") or "")[:120], "decision": side(r), "strength": r.get("strength"),
                 "reason": r.get("reason"), "created": r.get("created")} for r in rows]

    def stats(self) -> dict:
        return version_stats(self.labels.live(), self.all_pairs, self.name, self.version)

    def export(self) -> str:
        rows = export_rows([label for label in self.labels.live() if label["pair_key"] in self.pairs])
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _text(body: dict, key: str, limit: int = 200) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip() or len(v) > limit:
        raise BadRequest(400, f"'{key}' must be non-empty text of at most {limit} characters")
    return v.strip()


def _annotator(body: dict) -> str:
    return _text(body, "annotator", 64)


def _host_allowed(host: str | None, port: int) -> bool:
    """The Host header names this server by an IP literal or localhost, with its port (DNS rebinding defence)."""
    if not host:
        return False
    name, _, got_port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name or got_port != str(port):
        return False
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    server: LabelServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK stall per request

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name; requests are not logged
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _guard(self) -> bool:
        if not self.server.invited and not _host_allowed(self.headers.get("Host"), self.server.server_address[1]):
            self._error(403, f"Host '{self.headers.get('Host')}' is not this server; open the address "
                             "`datafactory label` printed")
            return False
        return True

    def _cookie(self) -> str | None:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie") or "").get(COOKIE)
        except CookieError:
            return None
        return morsel.value if morsel is not None else None

    def _who(self, token: str | None) -> str | None:
        """The invited annotator ``token`` belongs to; a wrong one counts against the client's address."""
        who = self.server.session.labels.annotator_of(token)
        if token and who is None:
            self.server.failed(self.client_address[0])
        return who

    def _denied(self, page: bool) -> None:
        if page:
            self._send(401, DENIED, "text/html; charset=utf-8")
        else:
            self._error(401, "only invited annotators can label here: open the link `datafactory label` printed "
                             "for you")

    def _signed_in(self, url) -> str | None | bool:
        """Invited mode: the annotator of this request's cookie; the link's token exchanged for the cookie (a
        redirect, answered here: True); or None (answered 401). Loopback for one person: ''."""
        if not self.server.invited:
            return ""
        q = parse_qs(url.query)
        if url.path in ("/", "/index.html") and "token" in q:
            who = self._who(q["token"][-1])
            if who is None:
                self._denied(True)
                return None
            rest = urlencode({k: v[-1] for k, v in q.items() if k not in ("token", "annotator")})
            secure = "; Secure" if (self.headers.get("X-Forwarded-Proto") or "").lower() == "https" else ""
            self._send(303, b"", "text/plain", {"Location": "/" + (f"?{rest}" if rest else ""), "Set-Cookie":
                                               f"{COOKIE}={q['token'][-1]}; Path=/; HttpOnly; SameSite=Strict{secure}"})
            return True
        who = self._who(self._cookie())
        if who is None:
            self._denied(url.path in ("/", "/index.html"))
        return who

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if not self._guard():
            return
        url = urlsplit(self.path)
        who = self._signed_in(url)
        if who is None or who is True:
            return
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if who:
            q["annotator"] = who  # the token's annotator, whatever the page sent
        s = self.server.session
        try:
            if url.path in ("/", "/index.html"):
                self._send(200, self.server.page, "text/html; charset=utf-8")
            elif url.path == "/api/session":
                self._json(200, {"dataset": s.name, "version": s.version, "annotator": who or s.annotator,
                                 "invited": bool(who), "sources": s.sources, "guideline": s.guideline,
                                 "pairs": len(s.pairs)})
            elif url.path == "/api/next":
                queue = q.get("queue", "todo")
                if queue not in ("todo", "review"):
                    raise BadRequest(400, "'queue' must be todo or review")
                sources = [x for x in q.get("sources", "").split(",") if x] or None
                unknown = [x for x in sources or [] if x not in s.sources]
                if unknown:
                    raise BadRequest(400, f"no source '{unknown[0]}' (sources: {', '.join(s.sources)})")
                self._json(200, s.next(_annotator(q), sources, queue))
            elif url.path == "/api/stats":
                self._json(200, s.stats())
            elif url.path == "/api/mine":
                self._json(200, {"labels": s.mine(_annotator(q))})
            elif url.path == "/api/pair":  # one pair again (from the page's list of the annotator's labels)
                key = q.get("key", "")
                if key not in s.pairs:
                    raise BadRequest(404, "no such pair in this version")
                self._json(200, {"item": s.show(key, None, _annotator(q)), "progress": s.progress(_annotator(q)),
                                 "queue": "todo"})
            elif url.path == "/api/export":
                self._send(200, s.export().encode("utf-8"), "application/x-ndjson; charset=utf-8",
                           {"Content-Disposition": f'attachment; filename="{s.name}-labels.jsonl"'})
            else:
                self._error(404, f"no page {url.path}")
        except BadRequest as e:
            self._error(e.status, str(e))

    def do_POST(self):  # noqa: N802
        if not self._guard():
            return
        who = self._signed_in(urlsplit(self.path)._replace(query=""))
        if who is None:
            return
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            self._error(403, f"a write from another origin ({origin}) is refused")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(415, "a write must be JSON (Content-Type: application/json)")
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._error(411, "a write needs a Content-Length")
            return
        if length > MAX_BODY:
            self._error(413, f"a write is at most {MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            self._error(400, f"the body is not a JSON object ({e})")
            return
        except RecursionError:
            self._error(400, "the body is nested too deeply to read (thousands of levels)")
            return
        if who:
            body["annotator"] = who  # the token's annotator, never a name the client sends
        s = self.server.session
        try:
            if self.path == "/api/label":
                self._json(200, s.label(body))
            elif self.path == "/api/undo":
                self._json(200, s.undo(body))
            else:
                self._error(404, f"no route {self.path}")
        except BadRequest as e:
            self._error(e.status, str(e))
        except StoreFull as e:  # nothing was saved: the page says so and keeps the pair on screen
            self._error(507, f"not saved: {e}")


class LabelServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A browser that closed its connection (a tab closed, a reload mid-request) is no error to print; anything
        else is, as the standard library prints it."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, session: LabelSession, host: str = "127.0.0.1", port: int = 0, *, invited: bool = False):
        self.session, self.invited = session, invited
        self.failures: dict[str, int] = {}  # client address -> wrong tokens sent
        self.sleep = time.sleep
        self._failures_lock = threading.Lock()
        self.page = resources.files("datafactory").joinpath("templates/label.html").read_bytes()
        try:
            super().__init__((host, port), Handler)
        except OSError as e:
            raise DataFactoryError(f"cannot listen on {host}:{port} ({e.strerror or e}); give another --port "
                                   "(0 picks a free one)") from None

    def failed(self, address: str) -> None:
        """One more wrong token from ``address``: past FREE_TRIES, its answer waits 1, 2, 4 ... MAX_DELAY seconds
        (a thread of its own waits; other people's requests are not held up)."""
        with self._failures_lock:
            n = self.failures[address] = self.failures.get(address, 0) + 1
        if n > FREE_TRIES:
            self.sleep(min(MAX_DELAY, 2.0 ** (n - FREE_TRIES - 1)))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{shown}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a thread (tests); ``shutdown()`` stops it."""
        t = threading.Thread(target=self.serve_forever, daemon=True)
        t.start()
        return t


def invite_link(url: str, token: str) -> str:
    """An invited annotator's link: the address people reach the server at, with their token."""
    return url.rstrip("/") + "/?" + urlencode({"token": token})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_guideline(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataFactoryError(f"--guideline {path}: cannot read it ({e}); give a UTF-8 text file") from None
