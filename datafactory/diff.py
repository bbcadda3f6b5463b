"""diff NAME@A NAME@B: rows added, removed and changed per split (matched by ``id``), schema, recipe and code changes."""
from __future__ import annotations

import polars as pl

from datafactory.store import Store


def _flatten(obj, prefix: str = "") -> dict[str, object]:
    if isinstance(obj, dict):
        out: dict[str, object] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def recipe_changes(a: dict, b: dict) -> list[tuple[str, object, object]]:
    fa, fb = _flatten(a), _flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def code_changes(a: dict, b: dict) -> list[dict]:
    """Where the code behind two versions differs: per source (by name) and step (by recipe key) that both have, each
    module of this package whose source changed, was added or left, and each row-shaping library whose version
    changed (from the manifests' ``code``; a manifest from before they were recorded gives the digest only)."""
    def parts(m: dict) -> dict[str, dict]:
        out = {f"sources.{n}": s for n, s in m.get("sources", {}).items()}
        out.update({s["key"]: s for s in m.get("steps", [])})
        return out

    pa, pb = parts(a), parts(b)
    changes = []
    for where in [w for w in pa if w in pb]:
        x, y = pa[where], pb[where]
        if x.get("code_version") == y.get("code_version"):
            continue
        cx, cy = x.get("code"), y.get("code")
        if not cx or not cy:
            changes.append({"where": where, "what": "code", "a": x.get("code_version"), "b": y.get("code_version")})
            continue
        if cx.get("version") != cy.get("version"):
            changes.append({"where": where, "what": "declared version", "a": cx.get("version"), "b": cy.get("version")})
        for kind in ("modules", "libraries"):
            mx, my = cx.get(kind, {}), cy.get(kind, {})
            for name in sorted(set(mx) | set(my)):
                if mx.get(name) != my.get(name):
                    changes.append({"where": where, "what": name, "a": mx.get(name), "b": my.get(name)})
    return changes


def _rows(store: Store, name: str, version: str, manifest: dict, split: str, columns: list[str]) -> pl.DataFrame:
    f = manifest["files"].get(split)
    if f is None:
        return pl.DataFrame({"id": [], "_h": []}, schema={"id": pl.String, "_h": pl.UInt64})
    df = pl.read_parquet(store.version_dir(name, version) / f)
    return df.select("id", pl.struct(sorted(columns)).hash().alias("_h") if columns else pl.lit(0, pl.UInt64).alias("_h"))


def made_changes(a: dict, b: dict) -> list[dict]:
    """What made two versions' steps differ besides recipe and code: the model behind a role (a profile's
    change), the texts a step depends on (a prompt file, a template), each input source's files."""
    out = []
    steps_a = {s["key"]: s for s in a.get("steps", [])}
    for s in b.get("steps", []):
        x = steps_a.get(s["key"])
        if x is None or "identity" not in x or "identity" not in s:
            continue
        ra, rb = x["identity"].get("roles") or {}, s["identity"].get("roles") or {}
        for role in sorted(set(ra) | set(rb)):
            if ra.get(role) != rb.get(role):
                out.append({"where": s["key"], "what": f"role {role}", "a": ra.get(role), "b": rb.get(role)})
        if x["identity"].get("digest") != s["identity"].get("digest") and ra == rb:
            out.append({"where": s["key"], "what": "its prompt or template text", "a": x["identity"].get("digest"),
                        "b": s["identity"].get("digest")})
    for name, sb in b.get("sources", {}).items():
        sa = a.get("sources", {}).get(name)
        if sa is None:
            continue
        fa, fb = sa.get("fingerprint") or {}, sb.get("fingerprint") or {}
        if fa.get("digest") != fb.get("digest") or fa.get("version") != fb.get("version"):
            what = (f"reads {fb.get('dataset')}@{fb.get('version')}" if "version" in fb else
                    f"its input files ({fa.get('files', '?')} -> {fb.get('files', '?')} files)")
            out.append({"where": f"sources.{name}", "what": what, "a": fa.get("digest") or fa.get("version"),
                        "b": fb.get("digest") or fb.get("version")})
    return out


def _all_rows(store: Store, name: str, version: str, manifest: dict, columns: list[str]) -> pl.DataFrame:
    """Every split's rows as (id, split, content hash)."""
    parts = [_rows(store, name, version, manifest, split, columns).with_columns(pl.lit(split).alias("split"))
             for split in manifest["files"]]
    if not parts:
        return pl.DataFrame(schema={"id": pl.String, "_h": pl.UInt64, "split": pl.String})
    return pl.concat(parts)


def diff(store: Store, ref_a: str, ref_b: str) -> dict:
    """Rows added, removed, changed and moved between splits (a row of one id in another split is moved, not
    removed from one and added to the other), per split; schema, recipe, code, and what else made the versions
    (the models behind the roles, prompt texts, input files)."""
    na, va = store.resolve(ref_a)
    nb, vb = store.resolve(ref_b)
    ma, mb = store.check(na, va), store.check(nb, vb)
    sa, sb = ma["schema"], mb["schema"]
    common = [c for c in sa if c in sb and sa[c] == sb[c] and c != "id"]
    a = _all_rows(store, na, va, ma, common)
    b = _all_rows(store, nb, vb, mb, common)
    joined = a.join(b, on="id", how="full", suffix="_b", coalesce=True)
    both = pl.col("_h").is_not_null() & pl.col("_h_b").is_not_null()
    moved = joined.filter(both & (pl.col("split") != pl.col("split_b")))
    splits = {}
    for split in list(dict.fromkeys([*ma["files"], *mb["files"]])):
        here_a, here_b = pl.col("split") == split, pl.col("split_b") == split
        added = joined.filter(pl.col("_h").is_null() & here_b)
        removed = joined.filter(pl.col("_h_b").is_null() & here_a)
        splits[split] = {
            "rows_a": a.filter(pl.col("split") == split).height, "rows_b": b.filter(pl.col("split") == split).height,
            "added": added.height, "removed": removed.height,
            "changed": joined.filter(both & here_a & here_b & (pl.col("_h") != pl.col("_h_b"))).height,
            "moved_in": moved.filter(here_b).height, "moved_out": moved.filter(here_a).height,
            "examples_added": added["id"].head(5).to_list(), "examples_removed": removed["id"].head(5).to_list(),
        }
    return {
        "a": f"{na}@{va}", "b": f"{nb}@{vb}",
        "splits": splits,
        "moved": {f"{x} -> {y}": n for x, y, n in moved.group_by("split", "split_b").len().sort("split", "split_b")
                  .iter_rows()},
        "schema": {"added": [c for c in sb if c not in sa], "removed": [c for c in sa if c not in sb],
                   "retyped": {c: [sa[c], sb[c]] for c in sa if c in sb and sa[c] != sb[c]}},
        "recipe": [{"key": k, "a": x, "b": y} for k, x, y in recipe_changes(ma["recipe"], mb["recipe"])],
        "code": code_changes(ma, mb),
        "made": made_changes(ma, mb),
    }
