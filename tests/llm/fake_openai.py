"""A local OpenAI-compatible chat-completions server for the tests, run as a subprocess so it outlives a killed
client. Standard library only (plus the factory's own token counter for realistic usage numbers).

    python tests/llm/fake_openai.py --port-file P --log L [--latency 0.05] [--rpm 3000] [--fail-rate 0.3]
                                    [--faults 429,500,truncated,timeout,html,cuttext] [--timeout-sleep 3] [--no-logprobs] [--seed 1]
                                    [--reasoning think]

Every response is one JSON line in ``--log``: ``{"key", "status", "fault", "t"}``, where ``key`` is the sha256 of
the request body, so a test can count how often a request was answered. Answers are deterministic in the
request: "[가짜 답변] <the last user message>"; a request with ``max_tokens <= 5`` is a judge call and gets a digit,
with a first-token distribution in ``top_logprobs`` when asked. Faults are drawn per request and attempt from
``--seed``: 429 (with ``retry-after-ms``), 500, a body cut in the middle, or a stall past the client's timeout.
Past ``--rpm`` requests in any 60 s window the answer is a 429 too, with ``x-ratelimit-*`` headers.
The Batch API (``/v1/files``, ``/v1/batches``) answers a batch's lines at once (each logged like a call) and
reports the batch completed after ``--batch-polls`` retrieves.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from datafactory.llm.cost import count_messages, count_text  # noqa: E402

ARGS = None
LOCK = threading.Lock()
WINDOW: collections.deque = collections.deque()
SEEN: collections.Counter = collections.Counter()
LOG = None


def answer_text(body: dict) -> str:
    user = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    return "[가짜 답변] " + (user[-1] if user else "")[:200]


def judge_distribution(key: str) -> list[dict]:
    score = int(key[:8], 16) % 5 + 1
    weights = {k: 0.7 if k == score else 0.1 if abs(k - score) == 1 else 0.025 for k in range(1, 6)}
    total = sum(weights.values())
    return [{"token": str(k), "logprob": math.log(w / total), "bytes": [48 + k]} for k, w in
            sorted(weights.items(), key=lambda kv: -kv[1])]


def completion(body: dict, key: str, now: float) -> dict:
    """A chat.completion for ``body``: deterministic in the request."""
    n = body.get("n") or 1
    judge = (body.get("max_tokens") or 99) <= 5
    choices = []
    for i in range(n):
        if judge:
            dist = judge_distribution(hashlib.sha256(f"{key}:{i}".encode()).hexdigest())
            text = dist[0]["token"]
            logprobs = {"content": [{"token": text, "logprob": dist[0]["logprob"], "bytes": dist[0]["bytes"],
                                     "top_logprobs": dist[: body.get("top_logprobs") or 0]}]} \
                if body.get("logprobs") and ARGS.logprobs else None
        else:
            text, logprobs = answer_text(body) + (f" ({i + 1})" if n > 1 else ""), None
        if ARGS.reasoning:  # a reasoning model served without a reasoning parser (Qwen3, DeepSeek-R1, EXAONE Deep)
            text = f"<{ARGS.reasoning}>\n음, 먼저 질문을 살펴보자. 답은 {text}\n</{ARGS.reasoning}>\n\n{text}"
        choices.append({"index": i, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
                        "finish_reason": "stop"})
    usage = {"prompt_tokens": count_messages(body.get("messages", []), "o200k_base"),
             "completion_tokens": sum(count_text(c["message"]["content"], "o200k_base") for c in choices)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": int(now),
            "model": body.get("model"), "choices": choices, "usage": usage}


FILES: dict[str, bytes] = {}
BATCHES: dict[str, dict] = {}


def batch_object(b: dict) -> dict:
    done = b["status"] == "completed"
    return {"id": b["id"], "object": "batch", "endpoint": "/v1/chat/completions", "completion_window": "24h",
            "created_at": 0, "input_file_id": b["input_file_id"], "status": b["status"],
            "output_file_id": b["output_file_id"] if done else None, "error_file_id": None, "metadata": b["metadata"],
            "request_counts": {"total": b["n"], "completed": b["n"] if done else 0, "failed": 0}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, payload: bytes, headers: dict | None = None, cut: bool = False,
              content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2] if cut else payload)
        if cut:
            self.close_connection = True

    def _log(self, key: str, status: int, fault: str = ""):
        with LOCK:
            LOG.write(json.dumps({"key": key, "status": status, "fault": fault, "t": time.time()}) + "\n")
            LOG.flush()

    def _json(self, status: int, obj: dict):
        return self._send(status, json.dumps(obj, ensure_ascii=False).encode())

    # -- the Batch API: files, batches (answered at once, reported done after --batch-polls retrieves) --------
    def do_GET(self):
        path = self.path.split("?")[0]
        if path.startswith("/v1/batches/"):
            batch = BATCHES.get(path.rsplit("/", 1)[1])
            if batch is None:
                return self._json(404, {"error": {"message": "no such batch"}})
            with LOCK:
                batch["polls"] += 1
                if batch["polls"] > ARGS.batch_polls:
                    batch["status"] = "completed"
            return self._json(200, batch_object(batch))
        if path == "/v1/batches":
            return self._json(200, {"object": "list", "data": [batch_object(b) for b in BATCHES.values()],
                                    "has_more": False})
        if path.startswith("/v1/files/") and path.endswith("/content"):
            data = FILES.get(path.split("/")[3])
            if data is None:
                return self._json(404, {"error": {"message": "no such file"}})
            return self._send(200, data)
        return self._json(404, {"error": {"message": f"no route {path}"}})

    def _upload(self, raw: bytes):
        from email.parser import BytesParser
        from email.policy import default

        msg = BytesParser(policy=default).parsebytes(b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
        data = next(part.get_payload(decode=True) for part in msg.iter_parts()
                    if part.get_param("name", header="content-disposition") == "file")
        file_id = f"file-{hashlib.sha256(data).hexdigest()[:16]}"
        FILES[file_id] = data
        return self._json(200, {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})

    def _create_batch(self, body: dict):
        lines = [json.loads(x) for x in FILES[body["input_file_id"]].decode().splitlines() if x.strip()]
        out = []
        for line in lines:
            req = line["body"]
            key = hashlib.sha256(json.dumps(req, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
            self._log(key, 200, "batch")
            out.append({"id": f"batch_req_{key[:12]}", "custom_id": line["custom_id"],
                        "response": {"status_code": 200, "request_id": key[:12], "body": completion(req, key, time.time())},
                        "error": None})
        output_id = f"file-out-{len(FILES)}"
        FILES[output_id] = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in out).encode()
        batch_id = f"batch_{len(BATCHES) + 1:04d}"
        BATCHES[batch_id] = {"id": batch_id, "input_file_id": body["input_file_id"], "output_file_id": output_id,
                             "metadata": body.get("metadata"), "status": "in_progress", "polls": 0, "n": len(lines)}
        return self._json(200, batch_object(BATCHES[batch_id]))

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/v1/files"):
            return self._upload(raw)
        if self.path.startswith("/v1/batches"):
            return self._create_batch(json.loads(raw))
        body = json.loads(raw)
        key = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        if self.path.startswith("/unauthorized/"):  # a wrong key
            self._log(key, 401, "unauthorized")
            return self._send(401, b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}')
        time.sleep(ARGS.latency)
        now = time.time()
        with LOCK:
            while WINDOW and WINDOW[0] < now - 60:
                WINDOW.popleft()
            limited = ARGS.rpm and len(WINDOW) >= ARGS.rpm
            if not limited:
                WINDOW.append(now)
            remaining = max(0, ARGS.rpm - len(WINDOW)) if ARGS.rpm else 10**6
            attempt = SEEN[key]
            SEEN[key] += 1
        limits = {"x-ratelimit-limit-requests": ARGS.rpm or 10**6, "x-ratelimit-remaining-requests": remaining}
        if limited:
            wait_ms = int(max(1.0, (WINDOW[0] + 60 - now) * 1000)) if WINDOW else 1000
            self._log(key, 429, "rpm")
            return self._send(429, json.dumps({"error": {"message": "Rate limit reached", "type": "requests",
                                                         "code": "rate_limit_exceeded"}}).encode(),
                              {**limits, "retry-after-ms": wait_ms})
        rng = random.Random(f"{ARGS.seed}:{key}:{attempt}")
        if rng.random() < ARGS.fail_rate:
            fault = rng.choice(ARGS.faults)
            if fault == "429":
                self._log(key, 429, fault)
                return self._send(429, b'{"error": {"message": "slow down", "code": "rate_limit_exceeded"}}',
                                  {**limits, "retry-after-ms": 50})
            if fault == "500":
                self._log(key, 500, fault)
                return self._send(500, b'{"error": {"message": "internal error", "type": "server_error"}}')
            if fault == "timeout":
                time.sleep(ARGS.timeout_sleep)  # the client gave up; the server still completes (and would bill)
            if fault == "html":  # a proxy's error page, with a 200
                self._log(key, 298, fault)
                return self._send(200, b"<html><body>Bad gateway</body></html>", content_type="text/html")
            if fault == "cuttext":  # a body cut short, without a JSON content type
                self._log(key, 297, fault)
                body = json.dumps(completion(body, key, now), ensure_ascii=False).encode()
                return self._send(200, body[:len(body) // 3], content_type="text/plain", cut=True)
            if fault == "400":
                self._log(key, 400, fault)
                return self._send(400, json.dumps({"error": {"message": "This request violates our content policy.",
                                                             "code": "content_policy_violation"}}).encode())
        else:
            fault = ""
        payload = json.dumps(completion(body, key, now), ensure_ascii=False).encode()
        cut = fault == "truncated"
        self._log(key, 200 if not cut else 299, fault)  # 299: a cut body, which the client cannot read
        self._send(200, payload, limits, cut=cut)


def main():
    global ARGS, LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--rpm", type=int, default=0)
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--faults", default="429,500,truncated")
    ap.add_argument("--timeout-sleep", type=float, default=3.0)
    ap.add_argument("--no-logprobs", dest="logprobs", action="store_false")
    ap.add_argument("--reasoning", default="")  # think / thought: answers open with <think>...</think>
    ap.add_argument("--seed", default="1")
    ap.add_argument("--batch-polls", type=int, default=2)  # retrieves before a batch reports "completed"
    ARGS = ap.parse_args()
    ARGS.faults = [f for f in ARGS.faults.split(",") if f]
    LOG = open(ARGS.log, "a", encoding="utf-8")
    count_text("warm up", "o200k_base")  # load the tokenizer before the first burst of requests
    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # the default backlog of 5 resets connections under concurrent load
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    tmp = ARGS.port_file + ".tmp"
    Path(tmp).write_text(str(server.server_address[1]))
    os.replace(tmp, ARGS.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
