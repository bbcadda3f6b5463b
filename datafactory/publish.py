"""Publishing a built version: the split files, the manifest, LICENSE.md, the card and its plot, written to a
staging folder and renamed into the store. Also what the manifest says about a build: where each input came
from (paths relative to the project), the terms of its sources (upstream included), warnings about its splits,
its LLM usage and the keys of every LLM request it asked.
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

import datafactory
from datafactory.code_identity import code_identity
from datafactory.recipe import Recipe
from datafactory.sources.dataset import DatasetSource
from datafactory.store import Background, Store, write_atomic, write_splits

if TYPE_CHECKING:
    from datafactory.engine import Plan

FORMAT_VERSION = 1  # bump when the layout of what the engine writes changes
LLM_KEYS = "llm_keys.txt"  # beside a version: the keys of every LLM request its build asked (not pushed)


def llm_usage(records: list[dict]) -> dict:
    """The manifest's LLM accounting: each LLM step's usage (as built, or from the cache entry) and the totals."""
    steps = {r["key"]: r["llm"] for r in records if "llm" in r}
    total: dict = {}
    for u in steps.values():
        for k in ("requests", "cache_hits", "calls", "possibly_billed_twice", "input_tokens", "output_tokens", "cost_usd"):
            total[k] = round(total.get(k, 0) + u.get(k, 0), 6)
        for k in ("failed", "retries"):
            for reason, n in u.get(k, {}).items():
                total.setdefault(k, {})[reason] = total.get(k, {}).get(reason, 0) + n
    return {"steps": steps, "total": total} if steps else {}


class Publisher:
    def __init__(self, store: Store, project_root: Path, log):
        self.store, self.project_root, self.log = store, project_root, log

    def llm_keys(self, plan: Plan, records: list[dict]) -> list[str]:
        keys: dict[str, None] = {}
        for sp, rec in zip(plan.steps, records):
            if "llm" in rec:
                path = self.store.cache_path("steps", sp.key, ".llm_keys")
                if path.exists():
                    keys.update(dict.fromkeys(path.read_text("utf-8").split()))
        return list(keys)

    def rel(self, path: str | Path | None) -> str | None:
        """A path as the manifest keeps it: relative to the project root when inside it."""
        if path is None:
            return None
        p = Path(path).expanduser()
        if p.is_absolute():
            try:
                return p.resolve().relative_to(self.project_root).as_posix()
            except ValueError:
                return str(p)
        return p.as_posix()

    def split_warnings(self, recipe: Recipe, frame: pl.DataFrame) -> list[str]:
        """A declared split left empty, or a source missing from a split it should have rows in: the cause,
        in words, and what to do."""
        if not recipe.splits or "split" not in frame.columns:
            return []
        n = frame.height
        counts = frame.group_by("source", "split").len()
        have = {(r["source"], r["split"]): r["len"] for r in counts.to_dicts()}
        by_source = frame.group_by("source").len()
        taken = sum(v for v in recipe.splits.values() if isinstance(v, int))
        share = {k: (v / n if isinstance(v, int) else v * max(n - taken, 0) / n) for k, v in recipe.splits.items()}
        out = []
        for split in recipe.splits:
            if not any(s == split for _, s in have):
                expected = n * share[split]
                out.append(f"split '{split}' received no rows: {n:,} rows give about {expected:.1f} expected; "
                           + ("a hash split of so few rows can leave a split empty; give it a count (e.g. "
                              f"{split}: 20) or set `stratify_by: source`" if expected < 5 else
                              "the rows reaching the split are not independent of their ids; set `stratify_by: source`"))
                continue
            for r in by_source.to_dicts():
                expected = r["len"] * share[split]
                if expected >= 5 and not have.get((r["source"], split)):
                    out.append(f"source '{r['source']}' has none of its {r['len']:,} rows in split '{split}' "
                               f"(about {expected:.0f} expected); set `stratify_by: source` to give every source "
                               "its share of each split")
        return out

    def terms(self, plan: Plan, frame: pl.DataFrame | None = None) -> tuple[dict[str, dict], dict]:
        """Each source's terms (for the manifest) and the dataset's (restrictions, warnings, samples), upstream
        included, for the sources whose rows ``frame`` holds (every one without a frame)."""
        from datafactory.terms import collect, source_terms

        recipe, own, per, upstream = plan.recipe, {}, {}, {}
        for n, sp in plan.sources.items():
            if isinstance(sp.source, DatasetSource):
                ref = f"{recipe.source_options[n].name}@{plan.upstream_versions[n]}"
                upstream[n] = (ref, self.store.manifest(*ref.split("@")))
                per[n] = {"license": f"the terms of {ref} (see its LICENSE.md)", "license_name": "", "license_link": "",
                          "redistribute": not upstream[n][1].get("terms", {}).get("restrictions"), "content_warning": ""}
            else:
                path = sp.source.path and Path(sp.source.path).expanduser()
                path = path if path is None or path.is_absolute() else self.project_root / path
                own[n] = per[n] = source_terms(sp.source, recipe.sources[n], path, self.project_root / "data" / "samples")
        return per, collect(own, upstream, None if frame is None else present_sources(frame, set(upstream)))

    def publish(self, plan: Plan, frame: pl.DataFrame, records: list[dict], source_stats: dict,
                 template: dict | None) -> dict:
        from datafactory.card import Rows, render_card, render_length_plot
        from datafactory.terms import render_license

        recipe = plan.recipe
        staging = self.store.staging(recipe.name)
        try:
            split = frame["split"] if "split" in frame.columns else None
            counts = dict(split.value_counts().iter_rows()) if split is not None else None
            split_names = split.unique(maintain_order=True).to_list() if split is not None else ["train"]
            order = list(recipe.splits or {}) or split_names
            names = sorted(split_names, key=lambda x: order.index(x) if x in order else len(order))
            body = frame.drop("split") if split is not None else frame
            files = {s: f"{s}.parquet" for s in names}
            sizes = {s: body.height if counts is None else counts[s] for s in names}
            # the split files are written by a thread (pyarrow releases the GIL) while the rest is done and the card
            # and plot are drawn
            writes = Background([(write_splits, (body, split, {s: staging / f for s, f in files.items()}))])
            rows = Rows(body, split, names)
            warnings = [w for r in records for w in r.get("warnings", [])]
            warnings += [f"source {n}: {w}" for n, st in source_stats.items() for w in st.get("warnings", [])]
            for w in self.split_warnings(recipe, frame):
                self.log(f"  warning: {w}")
                warnings.append(w)
            quarantine = {}
            pii = [r["params"] for r in records if r.get("key", "").endswith(".pii")]
            for name, sp in plan.sources.items():
                q = self.store.cache_path("sources", sp.key, ".quarantine.jsonl")
                if q.exists():
                    (staging / "quarantine").mkdir(exist_ok=True)
                    if pii:  # the records a pii step never saw: masked as it would have masked them
                        masked_quarantine(q, staging / "quarantine" / f"{name}.jsonl", pii)
                    else:
                        shutil.copy(q, staging / "quarantine" / f"{name}.jsonl")
                    quarantine[name] = f"quarantine/{name}.jsonl"
            tables: dict[str, list] = {}  # what steps dropped, row by row (near_dedup's twins, pair's candidates)
            for rec in records:
                for name, rel in rec.get("tables", {}).items():
                    tables.setdefault(rel, []).append(self.store.cache_path("steps", rec["cache_key"],
                                                                            f".table.{name}.parquet"))
            for rel, paths in tables.items():  # two steps' tables of one name (two `pair` steps) become one
                (staging / "tables").mkdir(exist_ok=True)
                if len(paths) == 1:
                    shutil.copy(paths[0], staging / rel)
                else:
                    pl.concat([pl.read_parquet(p) for p in paths], how="diagonal_relaxed").write_parquet(staging / rel)
            inputs = {}
            for n, sp in plan.sources.items():  # every input file, its size and digest: beside the manifest
                listing = getattr(sp.source, "input_list", None)
                if listing:
                    (staging / "inputs").mkdir(exist_ok=True)
                    write_atomic(staging / "inputs" / f"{n}.tsv", "name\tbytes\tdigest\n" + "".join(
                        f"{name}\t{size}\t{d}\n" for name, size, d in listing))
                    inputs[n] = f"inputs/{n}.tsv"
            canonical = recipe.canonical()
            for s in canonical["sources"].values():
                s["path"] = self.rel(s["path"])
            per_source, terms = self.terms(plan, body)
            template = template_in_output(template, body)
            manifest = {
                "name": recipe.name,
                "version": plan.version,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "datafactory_version": datafactory.__version__,
                "format_version": FORMAT_VERSION,
                "format": recipe.output.format,
                "type": recipe.output.type,
                "template": template,
                "recipe_file": self.rel(recipe.file),
                "recipe": canonical,
                "sources": {
                    n: {"kind": sp.source.kind, "path": self.rel(sp.source.path), **per_source[n],
                        "fingerprint": {**sp.fingerprint, **({"list": inputs[n]} if n in inputs else {})},
                        "code_version": code_identity(type(sp.source)).digest,
                        "code": code_identity(type(sp.source)).to_json(),
                        "cache_key": sp.key, **source_stats.get(n, {})}
                    for n, sp in plan.sources.items()},
                "upstream": {n: {"dataset": recipe.source_options[n].name, "version": v}
                             for n, v in plan.upstream_versions.items()},
                "terms": terms,
                "steps": records,
                "schema": {c: str(t) for c, t in body.schema.items()},
                "rows": body.height,
                "splits": sizes,
                "files": files,
                "quarantine": quarantine,
                "warnings": warnings,
                "cache_keys": [sp.key for sp in plan.sources.values()] + [sp.key for sp in plan.steps],
                "llm_usage": llm_usage(records),
                "labels": label_counts(records),
            }
            llm_keys = self.llm_keys(plan, records)
            if llm_keys:  # every request the build asked, for `datafactory llm export NAME` and a replay elsewhere
                write_atomic(staging / LLM_KEYS, "".join(k + "\n" for k in llm_keys))
                manifest["llm_keys"] = LLM_KEYS
            manifest["plots"] = render_length_plot(manifest, rows, staging)
            write_atomic(staging / "LICENSE.md", render_license(manifest))
            write_atomic(staging / "README.md", render_card(manifest, rows))
            writes.join()
            # each split file's size: a file deleted or cut short later is found (Store.damage) before it is served
            manifest["file_bytes"] = {f: (staging / f).stat().st_size for f in files.values()}
            write_atomic(staging / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        except BaseException:
            if "writes" in locals():
                writes.join(raise_errors=False)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.store.publish(staging, recipe.name, plan.version)
        return manifest


def template_in_output(template: dict | None, body: pl.DataFrame) -> dict | None:
    """The template record with ``used`` counted in the published rows (the template step counted the rows it saw,
    before later steps dropped some: 18 in a 16-row dataset): each variant's text up to its first field tells the
    rows apart. Where that cannot (two variants with one beginning), the step's counts stay, said as such."""
    if not template or not template.get("used") or template.get("column") not in body.columns:
        return template
    import string

    def head(fmt: str) -> str:
        return next(iter(string.Formatter().parse(fmt)), ("", None, None, None))[0]

    variants = [v for v in ("prompt_input", "prompt_no_input") if template.get(v)]
    heads = {v: head(template[v]) for v in variants}
    column = body[template["column"]]
    distinct = len(set(heads.values())) == len(heads) and all(heads.values()) and not any(
        a != b and heads[a].startswith(heads[b]) for a in heads for b in heads)
    if not distinct or column.dtype != pl.String:
        return {**template, "used_at_step": template["used"], "used": None}
    counts = {v: int(column.str.starts_with(h).sum()) for v, h in heads.items()}
    return {**template, "used": {v: n for v, n in counts.items() if n}}


def present_sources(frame: pl.DataFrame, datasets: set[str]) -> dict[str, set | None]:
    """The sources with rows in ``frame``, each dataset source with the upstream sources its rows came from (a
    row id is ``<source>/<upstream id>``, and the upstream id starts with the upstream source's name)."""
    sources = frame["source"].unique().to_list() if frame.height else []
    out: dict[str, set | None] = {s: None for s in sources if s not in datasets}
    for s in [s for s in sources if s in datasets]:  # only their rows' ids are read (no copy of every id)
        ups = frame.filter(pl.col("source") == s).select(pl.col("id").str.extract(r"^[^/]*/([^/]*)", 1)).unique()
        out[s] = set(ups.to_series().to_list())
    return out


def label_counts(records: list[dict]) -> dict:
    """Per source, who decided the preference pairs (``pair`` steps): human, judge (the LLM), role (a rule), the
    pairs people labelled, and how often they agreed with the judge where both chose a winner."""
    out: dict[str, dict] = {}
    for rec in records:
        for source, counts in (rec.get("info") or {}).get("labels", {}).items():
            acc = out.setdefault(source, {})
            for k, v in counts.items():
                acc[k] = acc.get(k, 0) + v
    for acc in out.values():
        for k in ("human", "judge", "role", "human_labelled", "compared_with_judge", "agree_with_judge"):
            acc.setdefault(k, 0)
        n = acc["compared_with_judge"]
        acc["judge_agreement"] = round(acc["agree_with_judge"] / n, 4) if n else None
    return out


def masked_quarantine(src: Path, dst: Path, pii_params: list[dict]) -> None:
    """A source's quarantined records with every kind of personal data any ``pii`` step of the recipe checks
    masked (all of them, whatever the columns: a quarantined record has none yet)."""
    from datafactory.pii import KINDS, mask_value

    kinds = tuple(dict.fromkeys(k for p in pii_params for k in (p.get("kinds") or KINDS)))
    keep = all(p.get("keep_business_numbers") for p in pii_params)
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        for line in f:
            if line.strip():
                out.write(json.dumps(mask_value(json.loads(line), kinds, keep_business_numbers=keep),
                                     ensure_ascii=False) + "\n")
