"""``datafactory trace NAME ROW_ID``: where one row of a built version came from.

The source record (its parsed fields, from the source cache), each step's value of the row (the columns a step
changed; rows that ``respond`` made from it, or that ``pair`` merged into it, are found by their ids), and every
LLM call that made it (role, model, the prompt, the answer, tokens, cost), from the response store.
"""
from __future__ import annotations

import json

import polars as pl

from datafactory.conversations import is_conversation, transcript
from datafactory.errors import StoreError
from datafactory.store import Store, read_entry


def _related(ids: pl.Series, row_id: str) -> pl.Series:
    """The row itself, rows made from it (``respond``: ``<id>/<role>/<i>``) and rows it was made from (its id up to
    a "/": a test per row in Python was 2.5 s of a trace over 830k rows)."""
    made_from = [row_id[:k] for k, ch in enumerate(row_id) if ch == "/"]
    return (ids == row_id) | ids.str.starts_with(row_id + "/") | ids.is_in(made_from)


def _sources_frame(store: Store, m: dict) -> pl.DataFrame | None:
    paths = [store.cache_path("sources", s.get("cache_key", ""), ".parquet") for s in m["sources"].values()]
    if not all(p.exists() for p in paths):
        return None
    return pl.concat([read_entry(p) for p in paths], how="diagonal_relaxed")


def _replay(store: Store, m: dict, step: dict, salt: str, frame: pl.DataFrame, base_dir) -> pl.DataFrame | None:
    """A step whose output the cache did not keep (a quick one), run again as the build ran it."""
    from datafactory.engine import apply_step
    from datafactory.steps import STEPS
    from datafactory.steps.base import StepContext

    cls = STEPS[step["step"]]
    if cls.cache:
        return None  # a costly step is always kept: missing means gc removed it
    ctx = StepContext(seed=m["recipe"]["seed"], work_dir=store.work_dir(step["cache_key"]), salt=salt)
    return apply_step(cls(cls.Params(**step["params"]), base_dir), step.get("sources"), frame, ctx)


def trace(store: Store, ref: str, row_id: str, responses=None, base_dir=None) -> dict:
    name, version = store.resolve(ref)
    m = store.manifest(name, version)
    vdir = store.version_dir(name, version)
    row = None
    for split, f in m["files"].items():
        df = pl.read_parquet(vdir / f)
        hit = df.filter(pl.col("id") == row_id)
        if hit.height:
            row, row_split = hit.to_dicts()[0], split
            break
    if row is None:
        raise StoreError(f"{name}@{version} has no row with id '{row_id}' (ids look like "
                         f"'{pl.read_parquet(vdir / next(iter(m['files'].values())), n_rows=1)['id'][0]}')")
    out: dict = {"ref": f"{name}@{version}", "split": row_split, "row": row, "source": None, "steps": [], "calls": []}
    source = row["source"]
    src = m["sources"].get(source, {})
    cache = store.cache_path("sources", src.get("cache_key", ""), ".parquet")
    if cache.exists():
        records = read_entry(cache)
        rec = records.filter(_related(records["id"], row_id))
        out["source"] = {"name": source, "kind": src.get("kind"), "path": src.get("path"), "records": rec.to_dicts()[:4]}
    previous: dict[str, dict] = {}
    frame = _sources_frame(store, m)  # steps the cache did not keep are run again from the frame before them
    seen: dict[str, int] = {}
    for step in m["steps"]:
        salt = f"{step['step']}#{seen.get(step['step'], 0)}"
        seen[step["step"]] = seen.get(step["step"], 0) + 1
        path = store.cache_path("steps", step.get("cache_key", ""), ".parquet")
        if path.exists():
            frame = pl.read_parquet(path)
        elif frame is not None:
            frame = _replay(store, m, step, salt, frame, base_dir or store.root.parent)
        if frame is None:
            out["steps"].append({"step": step["key"], "missing": "its cache entry was removed by gc"})
            continue
        rows = frame.filter(_related(frame["id"], row_id)).to_dicts()
        changed = []
        for r in rows:
            before = previous.get(r["id"], {})
            diff = {k: v for k, v in r.items() if k not in ("id", "source") and before.get(k) != v}
            changed.append({"id": r["id"], **diff})
        previous = {r["id"]: r for r in rows}
        out["steps"].append({"step": step["key"], "rows": changed})
    if responses is not None:
        for key in row.get("llm_calls") or []:
            got = responses.get_full(key)
            out["calls"].append(got if got is not None else {"key": key, "missing": "not in this data folder's store"})
    return out


def render(t: dict, width: int = 300) -> str:
    def short(v) -> str:
        s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        s = s.replace("\n", " ⏎ ")
        return s if len(s) <= width else s[:width] + "…"

    def row(r) -> list[str]:  # a row's plain fields on a line, each conversation in it a line a message
        chats = {k: v for k, v in r.items() if is_conversation(v)} if isinstance(r, dict) else {}
        out = [f"  {short({k: v for k, v in r.items() if k not in chats} if chats else r)}"]
        for k, v in chats.items():
            out += [f"    {k}:", transcript(v, width, indent="      ")]
        return out

    lines = [f"{t['ref']} [{t['split']}] {t['row']['id']}"]
    if t["source"]:
        s = t["source"]
        lines.append(f"source {s['name']} ({s['kind']}, {s['path']}):")
        lines += [x for r in s["records"] for x in row(r)]
    for step in t["steps"]:
        if "missing" in step:
            lines.append(f"{step['step']}: ({step['missing']})")
            continue
        lines.append(f"{step['step']}:")
        lines += [x for r in step["rows"] for x in row(r)] or ["  (the row is not in this step's output)"]
    for c in t["calls"]:
        if "missing" in c:
            lines.append(f"call {c['key'][:12]}: {c['missing']}")
            continue
        req = c["request"]
        messages = req.get("messages") or []
        answer = (c.get("answer") or {}).get("texts") or [c.get("reason")]
        said = (req.get("meta") or {}).get("conversation")
        lines.append(f"call {c['key'][:12]} {req.get('role')} {c['model']} ({c['status']}, {c['input_tokens']}+"
                     f"{c['output_tokens']} tokens, ${c['cost']:.5f})" + (f", conversation {said}" if said else "") + ":")
        if len(messages) > 1:  # the whole conversation sent, a line a message
            lines += ["  messages:", transcript(messages, width, indent="    ")]
        else:
            lines.append(f"  prompt: {short(messages[-1]['content'] if messages else '')}")
        lines.append(f"  answer: {short(answer[0] if len(answer) == 1 else answer)}")
    return "\n".join(lines)
