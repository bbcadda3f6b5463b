"""Dataset cards in the Hugging Face format: YAML front matter + sections, rendered from the manifest.

The front matter's ``configs`` point at the split files, so the pushed repo (and the local version folder)
load with ``datasets.load_dataset``.
"""
from __future__ import annotations

import json

import polars as pl
import yaml

SIZE_BOUNDS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
               (10_000_000, "1M<n<10M")]

TASKS = {"sft": ["text-generation"], "preference": ["text-generation", "text-classification"],
         "prompt": ["text-generation"], "text": ["text-generation"]}


def local_load_line(name: str, version: str) -> str:
    """The card's load call for the local folder; ``push`` swaps it for the Hub repo id."""
    return f'load_dataset("parquet", data_dir="data/{name}/{version}")'


def size_category(n: int) -> str:
    return next((label for bound, label in SIZE_BOUNDS if n < bound), "n>10M")


def front_matter(manifest: dict) -> dict:
    card = manifest["recipe"]["card"]
    meta = {
        "language": card["language"],
        "license": card["license"],
        "task_categories": card["task_categories"] or TASKS[manifest["format"]],
        "size_categories": [size_category(manifest["rows"])],
        "pretty_name": card["pretty_name"] or manifest["name"],
        "tags": list(dict.fromkeys(["datafactory", "korean", manifest["format"], *card["tags"]])),
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f} for s, f in manifest["files"].items()]}],
    }
    return meta


def _cell(v, width: int = 300) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= width else s[:width] + "…"


def _table(header: list[str], rows: list[list]) -> str:
    esc = lambda x: str(x).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def length_stats(frames: dict[str, pl.DataFrame]) -> list[list]:
    if not frames:
        return []
    all_rows = pl.concat(list(frames.values()), how="diagonal_relaxed")
    rows = []
    for c, t in all_rows.schema.items():
        if t != pl.String or c in ("id", "source", "upstream_source"):
            continue
        n = all_rows[c].str.len_chars().drop_nulls()
        if len(n):
            rows.append([c, int(n.min()), round(float(n.mean()), 1), int(n.median()), int(n.max())])
    return rows


def render_card(manifest: dict, frames: dict[str, pl.DataFrame]) -> str:
    name, version = manifest["name"], manifest["version"]
    meta = yaml.safe_dump(front_matter(manifest), allow_unicode=True, sort_keys=False)
    recipe = manifest["recipe"]
    out = [f"---\n{meta}---", f"# {recipe['card']['pretty_name'] or name}"]
    if recipe["description"]:
        out.append(recipe["description"].strip())
    out.append(f"Built by datafactory from the recipe `{name}` "
               f"(`{manifest['recipe_file']}`), version `{version}`, on {manifest['created_at'][:10]}. "
               f"Format: `{manifest['format']}` (TRL dataset type). {manifest['rows']:,} rows.")
    out.append("## Loading\n\n```python\nimport datafactory\nds = datafactory.load(\"" + f"{name}@{version}" +
               "\")            # DatasetDict; split=\"train\" for one split\n\n"
               f"from datasets import load_dataset\nds = {local_load_line(name, version)}  # or the Hub repo id after "
               "`datafactory push`\n```")
    out.append("## Sources and licences\n\n" + _table(
        ["source", "kind", "rows", "skipped (reason: records)", "quarantined", "licence"],
        [[n, s["kind"], f"{s.get('rows', 0):,}", ", ".join(f"{k}: {v:,}" for k, v in (s.get("skipped") or {}).items()) or "-",
          sum((s.get("quarantined") or {}).values()), s.get("license") or "see source"]
         for n, s in manifest["sources"].items()]))
    if manifest["upstream"]:
        out.append("Built from: " + ", ".join(f"`{u['dataset']}@{u['version']}`" for u in manifest["upstream"].values()))
    out.append("## Build steps\n\n" + _table(
        ["#", "step", "rows in", "rows out", "dropped (reason: rows)"],
        [[i, s["key"], f"{s['rows_in']:,}", f"{s['rows_out']:,}",
          ", ".join(f"{k}: {v:,}" for k, v in s["dropped"].items()) or "-"] for i, s in enumerate(manifest["steps"])]))
    out.append("## Splits\n\n" + _table(["split", "rows", "file"],
                                         [[s, f"{n:,}", manifest["files"][s]] for s, n in manifest["splits"].items()]))
    out.append("## Columns\n\n" + _table(["column", "type"], [[c, t] for c, t in manifest["schema"].items()]) +
               "\n\nEvery row carries `id` (`<source>/<record key>`, unique and stable) and `source` (the recipe "
               "source it came from), so any row can be traced to its original record.")
    stats = length_stats(frames)
    if stats:
        out.append("## Length statistics (characters)\n\n" + _table(["column", "min", "mean", "median", "max"], stats))
    if manifest.get("template"):
        t = manifest["template"]
        out.append(f"## Prompt template\n\n`{t['name']}`, rendered into `{t['column']}`:\n\n```text\n"
                   f"{t.get('prompt_input') or t['prompt_no_input']}\n```")
    first = next(iter(frames.values()), None)
    if first is not None and first.height:
        examples = "\n\n".join("```json\n" + json.dumps({k: _cell(v) for k, v in row.items()}, ensure_ascii=False, indent=2)
                               + "\n```" for row in first.head(3).to_dicts())
        out.append(f"## Examples ({next(iter(frames))})\n\n{examples}")
    return "\n\n".join(out) + "\n"
