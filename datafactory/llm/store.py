"""The response store: every LLM answer the factory was paid for, durable from the moment it arrives.

One SQLite file per data folder (``data/.llm/responses.sqlite3``), shared by every recipe: the same question
asked by two recipes is paid once. WAL, ``synchronous=FULL``, a commit per answer. The life of a request:

1. looked up by key before any call: ``done`` is a cache hit, ``failed`` (a permanent error: content policy,
   context too long) is not asked again;
2. marked ``inflight`` in its own commit before it is sent, with the attempt counted;
3. its answer, usage and cost written in one transaction as soon as they arrive (``done``).

A transient failure (429, 5xx, a timeout, broken JSON) is journaled as an attempt, never stored as an answer.
After a kill -9, the rows still ``inflight`` are exactly the requests that may have been billed without their
answer reaching us; the next run sends them again and counts them as "possibly billed twice".
Secrets never reach this file: a request is stored as its messages and sampling parameters only.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from datafactory.store import open_sqlite, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('inflight', 'done', 'failed', 'abandoned')),
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT,
    reason TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    resent_after_crash INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    key TEXT NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS attempts_key ON attempts (key);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    run_key TEXT NOT NULL,
    role TEXT NOT NULL,
    keys TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL
);
"""


WHAT = "the LLM response store"


class ResponseStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = open_sqlite(self.path, SCHEMA, WHAT + " (it holds paid answers)")
        self._sent: set[str] = set()  # keys this process marked in flight (its retries are not crash victims)

    def close(self) -> None:
        self.db.close()

    def _tx(self, sql: str, args: tuple) -> None:
        with transaction(self.db, WHAT):
            self.db.execute(sql, args)

    # -- lookups -------------------------------------------------------------------------------------
    def get(self, key: str) -> dict | None:
        row = self.db.execute("SELECT status, answer, reason, attempts, resent_after_crash FROM responses WHERE key = ?",
                              (key,)).fetchone()
        if row is None:
            return None
        status, answer, reason, attempts, resent = row
        return {"status": status, "answer": json.loads(answer) if answer else None, "reason": reason,
                "attempts": attempts, "resent_after_crash": resent}

    def get_full(self, key: str) -> dict | None:
        """Everything stored of one request: for `datafactory trace`."""
        row = self.db.execute("SELECT key, status, kind, model, request, answer, reason, input_tokens, output_tokens, "
                              "cost, attempts FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        k, status, kind, model, request, answer, reason, i, o, c, attempts = row
        return {"key": k, "status": status, "kind": kind, "model": model, "request": json.loads(request),
                "answer": json.loads(answer) if answer else None, "reason": reason, "input_tokens": i,
                "output_tokens": o, "cost": c, "attempts": attempts}

    def statuses(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        out: dict[str, str] = {}
        for i in range(0, len(keys), 900):
            chunk = keys[i:i + 900]
            q = f"SELECT key, status FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            out.update(self.db.execute(q, chunk).fetchall())
        return out

    def mean_output_tokens(self, kind: str, model: str, max_tokens: int | None) -> float | None:
        """Mean output tokens per answer of earlier calls to this model with the same ``max_tokens``: the
        estimate of a new call's answer."""
        row = self.db.execute(
            "SELECT AVG(CAST(output_tokens AS REAL) / json_extract(request, '$.n')) FROM responses WHERE status = 'done' "
            "AND kind = ? AND model = ? AND json_extract(request, '$.params.max_tokens') IS ?",
            (kind, model, max_tokens)).fetchone()
        return row[0]

    # -- the life of a request ---------------------------------------------------------------------------
    def mark_inflight(self, key: str, kind: str, model: str, request: dict) -> bool:
        """Journal that ``key`` is about to be sent. Returns True when an earlier run left it in flight (it may
        have been billed without the answer reaching us)."""
        now = time.time()
        with transaction(self.db, WHAT):
            row = self.db.execute("SELECT status FROM responses WHERE key = ?", (key,)).fetchone()
            # in flight from another run; this run's own retry (after a 429 or a 500) was not lost in a crash
            crashed = row is not None and row[0] == "inflight" and key not in self._sent
            self._sent.add(key)
            if row is None:
                self.db.execute("INSERT INTO responses (key, status, kind, model, request, attempts, created) "
                                "VALUES (?, 'inflight', ?, ?, ?, 1, ?)",
                                (key, kind, model, json.dumps(request, ensure_ascii=False), now))
            else:
                self.db.execute("UPDATE responses SET status = 'inflight', attempts = attempts + 1, "
                                "resent_after_crash = resent_after_crash + ? WHERE key = ?", (int(crashed), key))
            self.db.execute("INSERT INTO attempts (key, at, outcome) VALUES (?, ?, 'sent')", (key, now))
        return crashed

    def done(self, key: str, answer: dict, input_tokens: int, output_tokens: int, cost: float) -> None:
        """The answer, its usage and cost, in one transaction, as soon as it arrives."""
        self._tx("UPDATE responses SET status = 'done', answer = ?, reason = NULL, input_tokens = ?, output_tokens = ?, "
                 "cost = cost + ?, finished = ? WHERE key = ?",
                 (json.dumps(answer, ensure_ascii=False), input_tokens, output_tokens, cost, time.time(), key))

    def failed(self, key: str, reason: str, detail: str) -> None:
        """A permanent failure (content policy, context too long): kept, so it is not paid for again."""
        self._tx("UPDATE responses SET status = 'failed', reason = ?, answer = ?, finished = ? WHERE key = ?",
                 (reason, json.dumps({"detail": detail[:2000]}, ensure_ascii=False), time.time(), key))

    def attempt(self, key: str, outcome: str, detail: str = "") -> None:
        """A transient failure of one attempt (429, 500, timeout...): journaled, the request stays in flight."""
        self._tx("INSERT INTO attempts (key, at, outcome, detail) VALUES (?, ?, ?, ?)", (key, time.time(), outcome, detail[:500]))

    def abandon(self, key: str, reason: str) -> None:
        """A request we gave up on (retries exhausted): no longer in flight, asked again by a later build."""
        self._tx("UPDATE responses SET status = 'abandoned', reason = ? WHERE key = ? AND status = 'inflight'", (reason, key))

    # -- OpenAI Batch API jobs: recorded before polling, so a restart resumes the batch instead of paying again --
    def add_batch(self, batch_id: str, run_key: str, role: str, keys: list[str], input_file_id: str) -> None:
        self._tx("INSERT OR REPLACE INTO batches (batch_id, run_key, role, keys, input_file_id, status, created) "
                 "VALUES (?, ?, ?, ?, ?, 'submitted', ?)", (batch_id, run_key, role, json.dumps(keys), input_file_id, time.time()))

    def open_batch(self, run_key: str) -> str | None:
        row = self.db.execute("SELECT batch_id FROM batches WHERE run_key = ? AND finished IS NULL ORDER BY created DESC",
                              (run_key,)).fetchone()
        return row[0] if row else None

    def finish_batch(self, batch_id: str, status: str) -> None:
        self._tx("UPDATE batches SET status = ?, finished = ? WHERE batch_id = ?", (status, time.time(), batch_id))

    # -- accounting --------------------------------------------------------------------------------------
    def totals(self, keys: Iterable[str] | None = None) -> dict:
        where, args = "", []
        if keys is not None:
            keys = list(keys)
            if not keys:
                return {"answers": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}
            where, args = f"WHERE key IN ({','.join('?' * len(keys))}) AND status = 'done'", keys
        else:
            where = "WHERE status = 'done'"
        n, i, o, c = self.db.execute(f"SELECT COUNT(*), COALESCE(SUM(input_tokens),0), COALESCE(SUM(output_tokens),0), "
                                     f"COALESCE(SUM(cost),0) FROM responses {where}", args).fetchone()
        return {"answers": n, "input_tokens": i, "output_tokens": o, "cost": c}

    # -- moving the store between machines ---------------------------------------------------------------------
    def export(self, keys: Iterable[str] | None = None) -> Iterable[dict]:
        """The answered and permanently failed requests (only ``keys`` when given), one dict each."""
        sql = ("SELECT key, status, kind, model, request, answer, reason, input_tokens, output_tokens, cost "
               "FROM responses WHERE status IN ('done', 'failed')")
        wanted = set(keys) if keys is not None else None
        for row in self.db.execute(sql):
            if wanted is None or row[0] in wanted:
                k, status, kind, model, request, answer, reason, i, o, c = row
                yield {"key": k, "status": status, "kind": kind, "model": model, "request": json.loads(request),
                       "answer": json.loads(answer) if answer else None, "reason": reason, "input_tokens": i,
                       "output_tokens": o, "cost": c}

    def import_rows(self, rows: Iterable[dict]) -> tuple[int, int]:
        """Add exported rows; a key already answered here is kept. Returns (added, already there)."""
        added = kept = 0
        now = time.time()
        with transaction(self.db, WHAT):
            for r in rows:
                have = self.db.execute("SELECT status FROM responses WHERE key = ?", (r["key"],)).fetchone()
                if have is not None and have[0] in ("done", "failed"):
                    kept += 1
                    continue
                self.db.execute("INSERT OR REPLACE INTO responses (key, status, kind, model, request, answer, reason, "
                                "input_tokens, output_tokens, cost, attempts, created, finished) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                                (r["key"], r["status"], r["kind"], r["model"], json.dumps(r["request"], ensure_ascii=False),
                                 json.dumps(r["answer"], ensure_ascii=False) if r["answer"] is not None else None,
                                 r.get("reason"), r.get("input_tokens", 0), r.get("output_tokens", 0), r.get("cost", 0.0),
                                 now, now))
                added += 1
        return added, kept
