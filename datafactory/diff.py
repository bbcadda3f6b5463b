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


def diff(store: Store, ref_a: str, ref_b: str) -> dict:
    na, va = store.resolve(ref_a)
    nb, vb = store.resolve(ref_b)
    ma, mb = store.check(na, va), store.check(nb, vb)
    sa, sb = ma["schema"], mb["schema"]
    common = [c for c in sa if c in sb and sa[c] == sb[c] and c != "id"]
    splits = {}
    for split in list(dict.fromkeys([*ma["files"], *mb["files"]])):
        a = _rows(store, na, va, ma, split, common)
        b = _rows(store, nb, vb, mb, split, common)
        joined = a.join(b, on="id", how="full", suffix="_b", coalesce=True)
        splits[split] = {
            "rows_a": a.height, "rows_b": b.height,
            "added": joined.filter(pl.col("_h").is_null()).height,
            "removed": joined.filter(pl.col("_h_b").is_null()).height,
            "changed": joined.filter(pl.col("_h").is_not_null() & pl.col("_h_b").is_not_null()
                                     & (pl.col("_h") != pl.col("_h_b"))).height,
            "examples_added": joined.filter(pl.col("_h").is_null())["id"].head(5).to_list(),
            "examples_removed": joined.filter(pl.col("_h_b").is_null())["id"].head(5).to_list(),
        }
    return {
        "a": f"{na}@{va}", "b": f"{nb}@{vb}",
        "splits": splits,
        "schema": {"added": [c for c in sb if c not in sa], "removed": [c for c in sa if c not in sb],
                   "retyped": {c: [sa[c], sb[c]] for c in sa if c in sb and sa[c] != sb[c]}},
        "recipe": [{"key": k, "a": x, "b": y} for k, x, y in recipe_changes(ma["recipe"], mb["recipe"])],
        "code": code_changes(ma, mb),
    }
