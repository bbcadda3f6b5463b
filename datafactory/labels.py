"""Human preference labels: the label store, the pairs to label, majority over annotators and agreement.

One SQLite file per data folder (``data/.labels/labels.sqlite3``; ``gc`` never touches it), shared by every
dataset: a label belongs to a pair's content, not to a version. It is append-only: a label is one INSERT (one
transaction, WAL, ``synchronous=FULL``) with its annotator, the time spent, the side each answer was shown on,
the dataset name, version and row id; an undo is a row of its own that cancels an earlier one. Each write
carries a ``request_id`` made by the page when it shows a pair, unique in the table, so a double click or a
request sent twice makes one label.

A pair is known by ``pair_key(prompt, a, b)``: its prompt and its two answers in either order. So a label made on
an older version applies to a rebuild in which the pair is unchanged, whichever answer the new build calls
``chosen``. For each pair, an annotator's latest label counts (skips do not); the pair's outcome is the majority of
its annotators' votes (a winner by its text, ``tie`` or ``both_bad``); an even split is ``no_majority``.
"""
from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from datafactory.conversations import from_conversational, messages_type
from datafactory.errors import DataFactoryError
from datafactory.hashing import digest
from datafactory.jsonl import lines
from datafactory.store import open_sqlite, sqlite_write_error, transaction

DECISIONS = ("a", "b", "tie", "both_bad", "skip")
WINNERS = ("a", "b", "tie", "both_bad")  # what a label file's `winner` may say
PAIRS_TABLE = "pairs"  # the `pair` step's table of every candidate pair: tables/pairs.parquet

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('label', 'undo')),
    undoes INTEGER REFERENCES labels (seq),
    annotator TEXT NOT NULL,
    dataset TEXT NOT NULL,
    version TEXT,
    row_id TEXT,
    source TEXT,
    pair_key TEXT,
    prompt TEXT,
    response_a TEXT,
    response_b TEXT,
    shown_left TEXT CHECK (shown_left IN ('a', 'b')),
    decision TEXT CHECK (decision IN ('a', 'b', 'tie', 'both_bad', 'skip')),
    reason TEXT,
    seconds REAL,
    created REAL NOT NULL,
    strength TEXT CHECK (strength IN ('clear', 'slight'))
);
CREATE INDEX IF NOT EXISTS labels_pair ON labels (pair_key);
CREATE INDEX IF NOT EXISTS labels_annotator ON labels (dataset, annotator);
CREATE UNIQUE INDEX IF NOT EXISTS labels_undo_once ON labels (undoes) WHERE kind = 'undo';
CREATE TABLE IF NOT EXISTS invites (
    annotator TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""

LIVE = ("SELECT * FROM labels l WHERE kind = 'label' AND NOT EXISTS "
        "(SELECT 1 FROM labels u WHERE u.kind = 'undo' AND u.undoes = l.seq)")


def pair_key(prompt: str, a: str, b: str) -> str:
    """A pair's identity for human labels: its prompt and its two answers, in either order."""
    return digest("pair", prompt.strip(), sorted([a.strip(), b.strip()]))


def text_key(text: str) -> str:
    return digest("answer", text.strip())[:16]


WHAT = "the label store"


class LabelStore:
    """The label store of a data folder. Safe to share between the threads of one server (one connection behind a
    lock) and between processes (SQLite's WAL locking)."""

    def __init__(self, path: Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            self.db = None
            return
        self.lock = threading.Lock()
        self.db = open_sqlite(self.path, SCHEMA, WHAT + " (it holds people's work)")
        self.db.row_factory = sqlite3.Row
        if "strength" not in {r["name"] for r in self.db.execute("PRAGMA table_info(labels)")}:  # a store from before
            with transaction(self.db, WHAT):
                if "strength" not in {r["name"] for r in self.db.execute("PRAGMA table_info(labels)")}:
                    self.db.execute("ALTER TABLE labels ADD COLUMN strength TEXT "
                                    "CHECK (strength IN ('clear', 'slight'))")

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    # -- writing --------------------------------------------------------------------------------------
    def add(self, *, request_id: str, annotator: str, dataset: str, pair: dict, decision: str,
            shown_left: str | None = None, reason: str | None = None, seconds: float | None = None,
            version: str | None = None, created: float | None = None, strength: str | None = None) -> tuple[int, bool]:
        """One label, in its own transaction. ``pair`` has ``pair_key, prompt, response_a, response_b`` and
        optionally ``id`` and ``source``. Returns (seq, False), or (the existing seq, True) when this
        ``request_id`` was written before (a double click, a retried request)."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        with self.lock:
            try:
                cur = self.db.execute(
                    "INSERT INTO labels (request_id, kind, annotator, dataset, version, row_id, source, pair_key, "
                    "prompt, response_a, response_b, shown_left, decision, reason, seconds, created, strength) "
                    "VALUES (?, 'label', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (request_id, annotator, dataset, version, pair.get("id"), pair.get("source"), pair["pair_key"],
                     pair["prompt"], pair["response_a"], pair["response_b"], shown_left, decision,
                     reason or None, seconds, created if created is not None else time.time(),
                     strength if decision in ("a", "b") else None))
                return cur.lastrowid, False
            except sqlite3.IntegrityError:
                row = self.db.execute("SELECT seq FROM labels WHERE request_id = ?", (request_id,)).fetchone()
                if row is None:
                    raise
                return row["seq"], True
            except sqlite3.OperationalError as e:  # a full disk: said as such
                err = sqlite_write_error(e, WHAT)
                if err is e:
                    raise
                raise err from None

    def undo(self, *, request_id: str, annotator: str, dataset: str) -> dict | None:
        """Cancel ``annotator``'s latest live label on ``dataset`` (a tombstone row). Returns the cancelled label,
        or None when there is none. The same ``request_id`` twice undoes once."""
        with self.lock:
            done = self.db.execute("SELECT undoes FROM labels WHERE request_id = ?", (request_id,)).fetchone()
            if done is not None:
                return None
            with transaction(self.db, WHAT):  # the lookup and the tombstone together, across processes too
                row = self.db.execute(LIVE + " AND annotator = ? AND dataset = ? ORDER BY seq DESC LIMIT 1",
                                      (annotator, dataset)).fetchone()
                if row is not None:
                    self.db.execute("INSERT INTO labels (request_id, kind, undoes, annotator, dataset, created) "
                                    "VALUES (?, 'undo', ?, ?, ?, ?)", (request_id, row["seq"], annotator, dataset,
                                                                       time.time()))
            return dict(row) if row is not None else None

    # -- who may label: one secret link per invited annotator (``datafactory label --annotators``) -----------------
    def invite(self, annotator: str) -> str:
        """A new secret token for ``annotator`` (any earlier one stops working). Only its SHA-256 is kept: the
        token itself is shown once, in the link printed for that person."""
        import hashlib
        import secrets

        token = secrets.token_urlsafe(24)
        with self.lock:
            try:
                self.db.execute("INSERT INTO invites (annotator, token_sha256, created) VALUES (?, ?, ?) "
                                "ON CONFLICT (annotator) DO UPDATE SET token_sha256 = excluded.token_sha256, "
                                "created = excluded.created",
                                (annotator, hashlib.sha256(token.encode()).hexdigest(), time.time()))
            except sqlite3.OperationalError as e:
                err = sqlite_write_error(e, WHAT)
                if err is e:
                    raise
                raise err from None
        return token

    def revoke(self, annotator: str) -> bool:
        """``annotator``'s link stops working (at once: a server looks every request up); False if none."""
        with self.lock:
            return self.db.execute("DELETE FROM invites WHERE annotator = ?", (annotator,)).rowcount > 0

    def invited(self) -> dict[str, float]:
        """Invited annotators and when their current link was made."""
        with self.lock:
            return {r["annotator"]: r["created"]
                    for r in self.db.execute("SELECT annotator, created FROM invites ORDER BY annotator")}

    def annotator_of(self, token: str | None) -> str | None:
        """The annotator whose token this is, else None. Every stored digest is compared in constant time, so a
        wrong token takes as long as a right one."""
        import hashlib
        import hmac

        if not token or len(token) > 200:
            token = ""
        given = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        with self.lock:
            rows = self.db.execute("SELECT annotator, token_sha256 FROM invites").fetchall()
        found = None
        for r in rows:
            if hmac.compare_digest(given, r["token_sha256"]) and token:
                found = r["annotator"]
        return found

    # -- reading --------------------------------------------------------------------------------------
    def live(self, dataset: str | None = None) -> list[dict]:
        """Labels not undone, oldest first (optionally those made on ``dataset``)."""
        if self.db is None:
            return []
        sql, args = LIVE, ()
        if dataset is not None:
            sql, args = sql + " AND dataset = ?", (dataset,)
        with self.lock:
            return [dict(r) for r in self.db.execute(sql + " ORDER BY seq", args)]

    def since(self, seq: int) -> list[tuple]:
        """The rows after ``seq`` as (seq, kind, undoes, pair_key, annotator, decision), oldest first, without the
        texts: how a page keeps up with the labels (its own and other servers') one request at a time. Writers are
        serialised by SQLite, so rows commit in ``seq`` order and none is skipped."""
        if self.db is None:
            return []
        with self.lock:
            return self.db.execute("SELECT seq, kind, undoes, pair_key, annotator, decision FROM labels WHERE seq > ? "
                                   "ORDER BY seq", (seq,)).fetchall()

    def counts(self) -> dict[str, int]:
        if self.db is None:
            return {}
        with self.lock:
            return {r[0]: r[1] for r in self.db.execute("SELECT kind, COUNT(*) FROM labels GROUP BY kind")}


# -- what a label means ----------------------------------------------------------------------------------
def side(label: dict) -> str:
    """A label as the person saw it: the winner shown ``left`` or ``right``, ``tie``, ``both_bad`` or ``skip`` (the
    ``a``/``b`` names of a pair's answers are the store's, never what a person read)."""
    d = label["decision"]
    if d in ("a", "b") and label.get("shown_left") in ("a", "b"):
        return "left" if d == label["shown_left"] else "right"
    return d if d not in ("a", "b") else "winner"


def vote(label: dict) -> str | None:
    """A label as a vote that does not depend on which answer was called ``a``: the winner's text key, ``tie`` or
    ``both_bad``; None for a skip."""
    d = label["decision"]
    if d == "a":
        return text_key(label["response_a"])
    if d == "b":
        return text_key(label["response_b"])
    return d if d in ("tie", "both_bad") else None


def latest_votes(labels: list[dict]) -> dict[str, dict[str, dict]]:
    """pair_key -> annotator -> that annotator's latest non-skip label of the pair."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for label in sorted(labels, key=lambda r: (r.get("created") or 0, r.get("seq") or 0)):
        key, who = label["pair_key"], label["annotator"]
        if label["decision"] == "skip":
            out[key].pop(who, None)  # a later skip withdraws the annotator's earlier decision on the pair
        else:
            out[key][who] = label
    return {k: v for k, v in out.items() if v}


@dataclass
class Outcome:
    """The human verdict on one pair."""
    outcome: str  # winner | tie | both_bad | no_majority
    winner: str | None  # the winning answer's text key (outcome winner)
    votes: dict[str, int]
    annotators: list[str]

    def winner_is(self, text: str) -> bool:
        return self.winner is not None and self.winner == text_key(text)


def resolve(labels: list[dict], latest: dict[str, dict[str, dict]] | None = None) -> dict[str, Outcome]:
    """Majority over annotators, per pair key (``latest``: ``latest_votes(labels)`` when the caller has it)."""
    out = {}
    for key, by in (latest_votes(labels) if latest is None else latest).items():
        votes = Counter(vote(label) for label in by.values())
        (top, n), *rest = votes.most_common()
        if rest and rest[0][1] == n:
            outcome, winner = "no_majority", None
        elif top in ("tie", "both_bad"):
            outcome, winner = top, None
        else:
            outcome, winner = "winner", top
        out[key] = Outcome(outcome, winner, dict(votes), sorted(by))
    return out


@dataclass
class HumanLabels:
    """What a `pair` step is given by the engine: the resolved labels of the store (and of a label file), and the
    labels made on this recipe's own datasets (to report those whose pair is gone)."""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    own: dict[str, dict] = field(default_factory=dict)  # pair_key -> {source, version} of labels made on this recipe

    def identity(self) -> str | None:
        if not self.outcomes and not self.own:
            return None
        return digest(sorted((k, o.outcome, o.winner, o.votes) for k, o in self.outcomes.items()),
                      sorted((k, v.get("source")) for k, v in self.own.items()))


def human_labels(labels: list[dict], dataset: str | None = None) -> HumanLabels:
    own = {}
    for label in labels:
        if dataset is not None and label.get("dataset") == dataset and label["decision"] != "skip":
            own[label["pair_key"]] = {"source": label.get("source"), "version": label.get("version")}
    return HumanLabels(resolve(labels), own)


# -- label files (JSONL) ------------------------------------------------------------------------------------
def read_label_file(path: Path, default_annotator: str | None = None, dataset: str | None = None) -> list[dict]:
    """A JSONL file of labels: ``{"prompt", "response_a", "response_b", "winner": a|b|tie|both_bad}`` per line,
    optionally ``annotator, reason, seconds, dataset, version, id, source, shown_left, created`` (what
    ``datafactory labels export`` writes). Each line becomes a label row; its request id is the digest of its
    content, so importing a file twice adds nothing the second time."""
    rows = []
    try:
        rows_text = lines(Path(path).read_text("utf-8"))
    except UnicodeDecodeError as e:
        raise DataFactoryError(f"{path}: not UTF-8 ({e}); save the label file as UTF-8") from None
    for i, line in enumerate(rows_text):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in ("prompt", "response_a", "response_b", "winner") if not isinstance(rec.get(k), str)]
            if missing:
                raise ValueError(f"'{missing[0]}' is missing or not text")
            if rec["winner"] not in WINNERS:
                raise ValueError(f"winner must be one of {', '.join(WINNERS)}, not {rec['winner']!r}")
        except ValueError as e:
            raise DataFactoryError(f"{path}, line {i + 1}: a label needs prompt, response_a, response_b and winner "
                                   f"({e})") from None
        annotator = rec.get("annotator") or default_annotator or f"file:{Path(path).name}"
        rows.append({"seq": i, "request_id": "import:" + digest("label-line", rec, annotator)[:32],
                     "annotator": str(annotator), "dataset": rec.get("dataset") or dataset or "",
                     "version": rec.get("version"), "id": rec.get("id"), "source": rec.get("source"),
                     "pair_key": pair_key(rec["prompt"], rec["response_a"], rec["response_b"]),
                     "prompt": rec["prompt"], "response_a": rec["response_a"], "response_b": rec["response_b"],
                     "decision": rec["winner"], "shown_left": rec.get("shown_left"), "reason": rec.get("reason"),
                     "seconds": rec.get("seconds"), "created": rec.get("created") or 0.0,
                     "strength": rec.get("strength") if rec.get("strength") in ("clear", "slight") else None})
    return rows


def import_labels(store: LabelStore, rows: list[dict]) -> tuple[int, int]:
    added = kept = 0
    for r in rows:
        _, dup = store.add(request_id=r["request_id"], annotator=r["annotator"], dataset=r["dataset"],
                           version=r.get("version"), pair=r, decision=r["decision"],
                           shown_left=r.get("shown_left") if r.get("shown_left") in ("a", "b") else None,
                           reason=r.get("reason"), seconds=r.get("seconds"), created=r.get("created") or None,
                           strength=r.get("strength"))
        kept += dup
        added += not dup
    return added, kept


def export_rows(labels: list[dict]) -> list[dict]:
    """Live, non-skip labels in the label-file format (the `pair` step's ``labels:`` file reads it too)."""
    return [{"prompt": r["prompt"], "response_a": r["response_a"], "response_b": r["response_b"],
             "winner": r["decision"], "annotator": r["annotator"], "reason": r.get("reason"),
             "seconds": r.get("seconds"), "dataset": r["dataset"], "version": r.get("version"), "id": r.get("row_id"),
             "source": r.get("source"), "shown_left": r.get("shown_left"), "created": r.get("created"),
             "strength": r.get("strength")}
            for r in labels if r["decision"] != "skip"]


# -- the pairs of a built version -----------------------------------------------------------------------------
def pairs_of_version(version_dir: Path, manifest: dict) -> pl.DataFrame:
    """Every pair a person may label in a built version: the `pair` step's table of candidate pairs (those the
    judge kept and those it dropped: ties, both low, unscored), else the preference rows themselves. Columns:
    ``id, source, pair_key, prompt, context, turns, response_a, response_b, judge`` (a, b, tie, ... or None;
    ``turns``: the conversation before the prompt, as messages),
    ``decided_by`` (judge, role, dataset), ``outcome`` (kept or the reason the build dropped it)."""
    table = version_dir / "tables" / f"{PAIRS_TABLE}.parquet"
    if table.exists():
        df = pl.read_parquet(table)
    else:
        splits = [pl.read_parquet(version_dir / f) for f in manifest["files"].values()]
        df = pl.concat(splits, how="diagonal_relaxed") if splits else pl.DataFrame()
        if manifest.get("type") == "conversational" and df.height:  # the conversation's turns and text answers
            df = from_conversational(df).rename({"instruction": "prompt"})
        need = {"prompt", "chosen", "rejected"}
        if not need <= set(df.columns):
            raise DataFactoryError(f"{manifest['name']}@{manifest['version']} has no pairs to label: it needs "
                                   f"prompt, chosen and rejected columns (it has {', '.join(df.columns)}); label a "
                                   "preference dataset")
        text = "instruction" if "instruction" in df.columns else "prompt"
        df = df.select(
            "id", "source",
            pl.col(text).alias("prompt"),
            (pl.col("prompt") if text != "prompt" else pl.lit(None, pl.String)).alias("context"),
            (pl.col("history") if "history" in df.columns else pl.lit([], dtype=messages_type())).alias("turns"),
            pl.col("chosen").alias("response_a"), pl.col("rejected").alias("response_b"),
            pl.lit("a").alias("judge"),
            (pl.col("label_source") if "label_source" in df.columns else pl.lit("dataset")).alias("decided_by"),
            pl.lit("kept").alias("outcome"))
        df = df.with_columns(pl.Series("pair_key", [pair_key(p, a, b) for p, a, b in
                                                    df.select("prompt", "response_a", "response_b").iter_rows()],
                                       dtype=pl.String))
    return df.unique("pair_key", keep="first", maintain_order=True)


# -- statistics -----------------------------------------------------------------------------------------------
def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two annotators' votes on the same pairs; None where chance agreement is 1 (both always
    gave the same one category)."""
    n = len(a)
    if n < 2:  # one shared pair says nothing of agreement beyond chance
        return None
    po = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return None if pe >= 1 else (po - pe) / (1 - pe)


def _relative(label: dict) -> str:
    """A vote relative to the pair's two texts in sorted order (first/second), for kappa between annotators who
    may have seen the pair under different a/b names."""
    v = vote(label)
    if v in ("tie", "both_bad"):
        return v
    first = min(text_key(label["response_a"]), text_key(label["response_b"]))
    return "first" if v == first else "second"


def stats(labels: list[dict], pairs: pl.DataFrame | None = None, dataset: str | None = None) -> dict:
    """Labels per source and annotator, agreement between annotators (Cohen's kappa on the pairs both labelled),
    agreement with the LLM judge (where the judge chose a winner and the people a winner too), time per label,
    and labels made on ``dataset`` whose pair is not in ``pairs`` (an answer or the prompt changed)."""
    by = latest_votes(labels)
    current = [label for who in by.values() for label in who.values()]
    per: dict[str, Counter] = defaultdict(Counter)
    for label in current:
        per[label.get("source") or "?"][label["annotator"]] += 1
    decisions = Counter(side(label) for label in current)  # as the people saw them: left, right, tie, both bad
    strengths = Counter(f"{side(label)} {label['strength']}" for label in current if label.get("strength"))
    skips = Counter(label["annotator"] for label in labels if label["decision"] == "skip")
    annotators = sorted({label["annotator"] for label in current} | set(skips))
    kappas = []
    for i, x in enumerate(annotators):
        for y in annotators[i + 1:]:
            shared = [k for k, who in by.items() if x in who and y in who]
            if shared:
                va = [_relative(by[k][x]) for k in shared]
                vb = [_relative(by[k][y]) for k in shared]
                kappa = cohen_kappa(va, vb)
                kappas.append({"annotators": [x, y], "pairs": len(shared),
                               "agreement": round(sum(p == q for p, q in zip(va, vb)) / len(shared), 4),
                               "kappa": None if kappa is None else round(kappa, 4)})
    times = defaultdict(list)
    for label in current:
        if label.get("seconds") is not None:
            times[label["annotator"]].append(float(label["seconds"]))
    out = {"labels": len(current), "decisions": dict(decisions), "strength": dict(strengths), "annotators": annotators,
           "per_source": {s: dict(c) for s, c in sorted(per.items())}, "skipped": dict(skips), "kappa": kappas,
           "seconds": {a: {"labels": len(t), "median": round(statistics.median(t), 2), "mean": round(statistics.mean(t), 2)}
                       for a, t in sorted(times.items())}}
    if pairs is not None:
        outcomes = resolve(labels, by)
        judge: dict[str, Counter] = defaultdict(Counter)
        for row in pairs.filter(pl.col("pair_key").is_in(list(outcomes))).iter_rows(named=True):
            o = outcomes[row["pair_key"]]
            if row.get("decided_by") != "judge" or row.get("judge") not in ("a", "b") or o.outcome != "winner":
                continue
            judged = row["response_a"] if row["judge"] == "a" else row["response_b"]
            judge[row["source"]]["compared"] += 1
            judge[row["source"]]["agree"] += o.winner_is(judged)
        out["judge_agreement"] = {s: {"compared": c["compared"], "agree": c["agree"],
                                      "rate": round(c["agree"] / c["compared"], 4)} for s, c in sorted(judge.items())}
        if dataset is not None:
            present = set(pairs["pair_key"].to_list())
            gone = Counter((label.get("version") or "?") for label in current
                           if label.get("dataset") == dataset and label["pair_key"] not in present)
            out["unmatched"] = {"labels": sum(gone.values()), "by_version": dict(gone)}
        out["pairs"] = pairs.height
    return out


def version_stats(labels: list[dict], pairs: pl.DataFrame, name: str, version: str) -> dict:
    """``stats`` of one built version (the page's stats view and `datafactory labels stats NAME`): the labels of its
    pairs, and those made on its dataset whose pair it no longer has (counted under ``unmatched``)."""
    keys = set(pairs["pair_key"].to_list())
    return stats([x for x in labels if x["pair_key"] in keys or x["dataset"] == name], pairs, name) | {
        "dataset": f"{name}@{version}"}
