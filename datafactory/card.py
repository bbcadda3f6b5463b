"""Dataset cards in the Hugging Face format: YAML front matter + sections, rendered from the manifest.

The front matter's ``configs`` point at the split files, so the pushed repo (and the local version folder)
load with ``datasets.load_dataset``; ``dataset_info`` gives the columns as ``datasets`` feature types and the
split sizes; ``license: other`` comes with ``license_name`` and ``license_link`` (LICENSE.md beside the card).
A PNG of the length distributions per split (``lengths.png``) sits beside the card and is linked from it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from datafactory.conversations import CONVERSATIONAL, is_conversation, is_messages, transcript
from datafactory.recipe import FORMATS
from datafactory.terms import REDISTRIBUTION, card_license

SIZE_BOUNDS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
               (10_000_000, "1M<n<10M")]

TASKS = {"sft": ["text-generation"], "preference": ["text-generation", "text-classification"],
         "prompt": ["text-generation"], "text": ["text-generation"]}
LENGTH_PLOT = "lengths.png"


def size_category(n: int) -> str:
    return next((label for bound, label in SIZE_BOUNDS if n < bound), "n>10M")


_PLAIN = {"string": "string", "int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8",
          "uint64": "uint64", "uint32": "uint32", "double": "float64", "float": "float32", "bool": "bool"}


def features(frames: dict[str, pl.DataFrame]) -> list[dict]:
    """The columns as the card's ``dataset_info.features`` (``datasets.Features`` in YAML), with the types the
    split files are written with. Plain columns (text, numbers, lists of them) are written directly; anything
    else asks ``datasets`` (importing it costs about half a second)."""
    import pyarrow as pa

    from datafactory.store import hub_arrow_type

    first = next(iter(frames.values()))
    schema = pa.schema([pa.field(f.name, hub_arrow_type(f.type)) for f in first.head(0).to_arrow().schema])
    plain = []
    for f in schema:
        t = f.type
        if str(t) in _PLAIN:
            plain.append({"name": f.name, "dtype": _PLAIN[str(t)]})
        elif pa.types.is_list(t) and str(t.value_type) in _PLAIN:
            plain.append({"name": f.name, "list": _PLAIN[str(t.value_type)]})
        else:
            from datasets import Features

            return Features.from_arrow_schema(schema)._to_yaml_list()
    return plain


def _feature_repr(entry: dict) -> str:
    """A card's feature entry as ``datasets`` prints it (``Value('string')``, ``List(Value('int64'))``)."""
    if "dtype" in entry:
        return f"Value('{entry['dtype']}')"
    if isinstance(entry.get("list"), str):
        return f"List(Value('{entry['list']}'))"
    return json.dumps({k: v for k, v in entry.items() if k != "name"}, ensure_ascii=False)


def front_matter(manifest: dict, feats=None, nbytes: int | None = None) -> dict:
    card = manifest["recipe"]["card"]
    meta = {
        "language": card["language"],
        **card_license(manifest),
        "task_categories": card["task_categories"] or TASKS[manifest["format"]],
        "size_categories": [size_category(manifest["rows"])],
        "pretty_name": card["pretty_name"] or manifest["name"],
        "tags": list(dict.fromkeys(["datafactory", "korean", manifest["format"], *card["tags"]])),
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f} for s, f in manifest["files"].items()]}],
    }
    if feats is not None:
        # num_bytes: the rows' size in memory (Arrow), shared out by rows; `datasets` ignores every split's line
        # without it (with a warning at each load) and checks only the counts
        total = max(1, manifest["rows"])
        meta["dataset_info"] = {"features": feats,
                                "splits": [{"name": s, "num_bytes": round((nbytes or 0) * n / total), "num_examples": n}
                                           for s, n in manifest["splits"].items()]}
    return meta


def _cell(v, width: int = 300) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= width else s[:width] + "…"


def _table(header: list[str], rows: list[list]) -> str:
    esc = lambda x: str(x).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class Rows:
    """A version's rows as the card reads them, without a copy per split: the table (no ``split`` column), the split
    of each row (``None``: one split) and the splits in order."""
    body: pl.DataFrame
    split: pl.Series | None
    names: list[str]
    _chars: dict[str, pl.Series] = field(default_factory=dict, repr=False, compare=False)

    def chars(self, column: str) -> pl.Series:
        """Characters per row of ``column`` (null for a null), counted once for the statistics and the plot."""
        if column not in self._chars:
            col = self.body[column]
            self._chars[column] = (col.list.eval(pl.element().struct.field("content").str.len_chars()).list.sum()
                                   if is_messages(col.dtype) else col.str.len_chars())
        return self._chars[column]

    def lengths(self, column: str) -> dict[str, pl.Series]:
        """Characters per row of ``column``, per split (nulls left out)."""
        n = self.chars(column)
        if self.split is None:
            return {self.names[0]: n.drop_nulls()}
        both = pl.DataFrame({"split": self.split, "n": n})
        return {s: both.filter(pl.col("split") == s)["n"].drop_nulls() for s in self.names}

    def head(self, n: int = 3) -> pl.DataFrame:
        """The first rows of the first split."""
        if self.split is None:
            return self.body.head(n)
        return self.body[(self.split == self.names[0]).arg_true().head(n)]


def length_stats(rows: Rows, text: tuple[str, ...] = ()) -> list[list]:
    """Characters per row of the text columns: the format's (``text``) and the others that hold text rather than a
    label (values mostly distinct: not `chosen_role`, `label_source`, `category`)."""
    out = []
    height = rows.body.height
    for c, t in rows.body.schema.items():
        if (t != pl.String and not is_messages(t)) or c in ("id", "source", "upstream_source", "upstream_split"):
            continue
        col = rows.body[c]
        if c not in text and t == pl.String and col.n_unique() * 2 <= height - col.null_count():
            continue  # a label-like column (most values repeat: a role, a topic): its lengths say nothing
        n = rows.chars(c).drop_nulls()
        if len(n):
            out.append([c, int(n.min()), round(float(n.mean()), 1), int(n.median()), int(n.max())])
    return out


# matplotlib's default colours ("tab10"), one per split
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_BINS = 40


def _nice_step(span: float, ticks: int = 5) -> float:
    """A tick spacing of 1, 2 or 5 times a power of ten giving about ``ticks`` ticks over ``span``."""
    import math

    raw = max(span, 1e-12) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _tick_label(v: float, step: float) -> str:
    if step >= 1:
        return f"{v:,.0f}"
    digits = max(0, -int(f"{step:e}".split("e")[1]))
    return f"{v:.{digits}f}"


def length_histograms(rows: Rows, column: str) -> tuple[list[float], dict[str, tuple[int, list[float]]], bool] | None:
    """Characters per row of ``column`` in up to _BINS bins shared by every split: the bin edges and, per split, its row
    count and each bin's share of its rows (so a small test split is as visible as train). A long tail past three
    times the 99th percentile is gathered in the last bin, else one 20k-character row would put every other row in
    the first bin (the third value says whether it was; the plot's axis then says so). None where the column has no lengths."""
    per = {s: n for s, n in rows.lengths(column).items() if len(n)}
    if not per:
        return None
    every = rows.chars(column).drop_nulls()
    lo, hi = float(every.min()), float(every.max())
    p99 = float(every.quantile(0.99, "higher"))
    tail = hi > 3 * p99 and p99 > lo
    if tail:
        hi = p99
    bins = int(min(_BINS, hi + 1 - lo))  # lengths are whole numbers: no bin narrower than one character
    width = (hi + 1 - lo) / bins
    out = {}
    for split, n in per.items():
        b = ((n.cast(pl.Float64) - lo) / width).floor().clip(0, bins - 1).cast(pl.Int32)
        counts = dict(b.value_counts().iter_rows())
        out[split] = (len(n), [counts.get(i, 0) / len(n) for i in range(bins)])
    return [lo + i * width for i in range(bins + 1)], out, tail


def render_length_plot(manifest: dict, rows: Rows, folder: Path) -> list[str]:
    """``lengths.png``: a histogram of characters per row of each text column of the format, one colour per
    split, as outlined steps (the share of the split's rows in each bin). Returns the file names written (none for
    an empty dataset). Drawn with Pillow at twice the size and scaled down (smooth lines): matplotlib's import
    alone was 0.3 s and 30 MiB of every build (a 10k-file build 1.92 -> 1.63 s without the plot)."""
    columns = [c for c in format_columns(manifest) if c in rows.body.columns]
    hists = [(c, h) for c in columns if (h := length_histograms(rows, c)) is not None]
    if not hists:  # an empty dataset, or no text in the format's columns
        return []
    from PIL import Image, ImageDraw, ImageFont

    k = 2  # drawn at twice the size
    pw, ph, top = 380, 270, 26  # a panel, and the band for the title above them
    img = Image.new("RGB", (pw * len(hists) * k, (ph + top) * k), "white")
    draw = ImageDraw.Draw(img)

    small, normal = ImageFont.load_default(size=9 * k), ImageFont.load_default(size=11 * k)  # Pillow's own font

    def text(xy, s, f, anchor):
        draw.text((xy[0] * k, xy[1] * k), s, fill="black", font=f, anchor=anchor)

    text((pw * len(hists) / 2, 6), f"{manifest['name']}@{manifest['version']}", normal, "mt")
    for p, (col, (edges, splits, tail)) in enumerate(hists):
        x0, x1 = p * pw + 62, (p + 1) * pw - 14  # the axes' box, in the final image's pixels
        y0, y1 = top + 24, top + ph - 44
        ymax = max(max(shares) for _, shares in splits.values()) * 1.08  # shares sum to 1: never 0
        x = lambda v: (x0 + (v - edges[0]) / (edges[-1] - edges[0]) * (x1 - x0)) * k  # noqa: E731
        y = lambda v: (y1 - v / ymax * (y1 - y0)) * k  # noqa: E731
        text(((x0 + x1) / 2, top + 6), f"{col}: characters per row", normal, "mt")
        step = max(1, _nice_step(edges[-1] - edges[0]))
        v = -(-edges[0] // step) * step
        while v <= edges[-1] + 1e-9:
            draw.line([(x(v), y1 * k), (x(v), (y1 + 4) * k)], fill="black", width=k)
            text((x(v) / k, y1 + 6), _tick_label(v, step), small, "mt")
            v += step
        step = _nice_step(ymax * 100, 4) / 100
        v = 0.0
        while v <= ymax + 1e-12:
            draw.line([((x0 - 4) * k, y(v)), (x0 * k, y(v))], fill="black", width=k)
            text((x0 - 6, y(v) / k), _tick_label(v * 100, step * 100) + "%", small, "rm")
            v += step
        text(((x0 + x1) / 2, y1 + 22), "characters" + (" (the last bin holds the longest 1%)" if tail else ""),
             small, "mt")
        label = Image.new("L", (ph * k, 14 * k), 255)
        ImageDraw.Draw(label).text((label.width // 2, 0), "share of the split's rows per bin", font=small,
                                   fill=0, anchor="mt")
        label = label.rotate(90, expand=True)
        img.paste("black", (p * pw * k + 4 * k, (top + ph // 2 - 24) * k - label.height // 2),
                  label.point(lambda px: 255 - px))
        # the legend in the top corner the steps leave freer
        third = max(1, (len(edges) - 1) // 3)
        left = max(max(shares[:third]) for _, shares in splits.values()) < max(
            max(shares[-third:]) for _, shares in splits.values())
        lx = x0 + 8 if left else x1 - 26 - max(draw.textlength(f"{s} ({n:,})", font=small) / k
                                               for s, (n, _) in splits.items())
        for i, (split, (n, shares)) in enumerate(splits.items()):
            colour = _COLOURS[i % len(_COLOURS)]
            points = [(x(edges[0]), y(0))]
            for b, share in enumerate(shares):
                points += [(x(edges[b]), y(share)), (x(edges[b + 1]), y(share))]
            points.append((x(edges[-1]), y(0)))
            draw.line(points, fill=colour, width=2 * k, joint="curve")
            ly = y0 + 8 + 14 * i
            draw.line([(lx * k, ly * k), ((lx + 18) * k, ly * k)], fill=colour, width=2 * k)
            text((lx + 22, ly), f"{split} ({n:,})", small, "lm")
        draw.rectangle([x0 * k, y0 * k, x1 * k, y1 * k], outline="black", width=k)
    img.reduce(k).save(folder / LENGTH_PLOT)
    return [LENGTH_PLOT]


def loading_section(name: str, version: str, repo: str | None = None) -> str:
    """How to load the dataset: by name through datafactory locally; by Hub id (this version's tag) once pushed."""
    if repo:
        return ("## Loading\n\n```python\nfrom datasets import load_dataset\n"
                f'ds = load_dataset("{repo}", revision="{version}")  # exactly this version (a tag); '
                "without revision: the newest pushed\n```")
    return ("## Loading\n\n```python\nimport datafactory\n"
            f'ds = datafactory.load("{name}@{version}")            # DatasetDict; split="train" for one split\n\n'
            f'from datasets import load_dataset\nds = load_dataset("parquet", data_dir="data/{name}/{version}")\n```')


def _params(params: dict) -> str:
    """A step's parameters as set (unset and empty ones left out, at every depth), as compact JSON."""
    def given(v):
        if isinstance(v, dict):
            return {k: given(x) for k, x in v.items() if x not in (None, [], {}, False)}
        return v

    return json.dumps(given(params), ensure_ascii=False)


def llm_section(usage: dict) -> str:
    """Per LLM step: the models behind its roles, requests, answers from the store, calls made, failures,
    tokens and cost; the row's ``llm_calls`` name the stored requests and answers."""
    rows = []
    for key, u in usage["steps"].items():
        failed = ", ".join(f"{k}: {v:,}" for k, v in (u.get("failed") or {}).items()) or "-"
        rows.append([key, ", ".join(f"{r}: {m}" for r, m in u.get("roles", {}).items()), f"{u['requests']:,}",
                     f"{u['cache_hits']:,}", f"{u['calls']:,}", failed, f"{u['input_tokens']:,} / {u['output_tokens']:,}",
                     f"${u['cost_usd']:.4f}"])
    t = usage["total"]
    text = ("## LLM calls\n\n" + _table(["step", "roles (model)", "requests", "from the store", "calls", "failed",
                                          "tokens in / out", "cost"], rows) +
            f"\n\nTotal: {t.get('calls', 0):,} calls, ${t.get('cost_usd', 0):.4f}. A row's `llm_calls` lists the keys of "
            "the requests that made it (stored with their answers in the data folder's response store).")
    if t.get("possibly_billed_twice"):
        text += (f" {t['possibly_billed_twice']:,} requests were sent again after a build died with them in flight: "
                 "they may have been billed twice.")
    return text


def judge_of(manifest: dict) -> str | None:
    """The model behind the recipe's judge role, as the build recorded it."""
    for u in ((manifest.get("llm_usage") or {}).get("steps") or {}).values():
        if (u.get("roles") or {}).get("judge"):
            return u["roles"]["judge"]
    return None


def judge_words(model: str | None) -> tuple[str, str]:
    """The labels table's heading for the judge's pairs, and a sentence saying what judged: an LLM, or the offline
    demo's hand-written scores and rule-of-thumb stand-in (never called an LLM judge)."""
    if model and model.startswith("datafactory-sample-answers"):
        rules = "+rule-of-thumb" in model
        return ("judge (stand-in, no LLM)" if rules else "judge (sample scores)",
                "No LLM judged these pairs: the offline demo's `judge` gives the scores its team wrote by hand for the "
                "sample answers" + (", and to an answer without one (a local model's) a rule-of-thumb stand-in score "
                                    "that reads no meaning (Kiwi's fluency, Hangul share, repetition, length: "
                                    "datafactory/llm/rules.py)" if rules else "") + ". ")
    return "LLM judge", (f"The judge: `{model}`. " if model else "")


def labels_section(labels: dict, judge: str | None = None) -> str:
    """Who decided the preference pairs, per source, and how often people agreed with the judge."""
    heading, said = judge_words(judge)
    rows = []
    for source, c in labels.items():
        agree = (f"{c['agree_with_judge']:,} of {c['compared_with_judge']:,} ({c['judge_agreement']:.0%})"
                 if c.get("compared_with_judge") else "-")
        rows.append([source, f"{c['human'] + c['judge'] + c['role']:,}", f"{c['human']:,}", f"{c['judge']:,}",
                     f"{c['role']:,}", f"{c['human_labelled']:,}", agree])
    return ("## Labels\n\n" + _table(["source", "pairs", "human", heading, "rule (role)", "pairs labelled by people",
                                       "people agree with the judge"], rows) +
            "\n\nA pair's `label_source` says who chose its `chosen` answer: `human` (labels made with `datafactory "
            "label`, the majority of the annotators; human ties and both-bad answers drop the pair), `judge` (G-Eval "
            "totals) or `role` (the teacher's answer over the SFT model's). " + said + "Agreement counts the pairs "
            "where the judge and the people each chose a winner.")


def safety_section(manifest: dict) -> str:
    """What was checked before publishing: personal data (``pii`` steps), by kind, and the settings."""
    from datafactory.pii import PLACEHOLDER

    rows = []
    for s in manifest["steps"]:
        info = (s.get("info") or {}).get("pii")
        if not info:
            continue
        found = ", ".join(f"{PLACEHOLDER[k].strip('<>')} ({k}): {n:,}" for k, n in info["found"].items()) or "none"
        done = "masked" if info["action"] == "mask" else f"{info['rows']:,} rows dropped"
        rows.append([s["key"], ", ".join(f"`{c}`" for c in info["columns"]), found, f"{info['rows']:,}", done,
                     ", ".join(info["kinds_checked"]) + ("; business numbers (1588-xxxx) kept"
                                                        if info.get("keep_business_numbers") else "")])
    if not rows:
        text = ("No `pii` step ran: the rows were not checked for personal data (주민등록번호, phone numbers, "
                "addresses...). Add `- pii: {columns: [...]}` to the recipe before publishing user data.")
    else:
        text = ("Personal data was looked for before publishing (datafactory/pii.py: Korean resident and foreigner "
                "registration numbers with their check digits, phone numbers, e-mail, card numbers by Luhn, bank "
                "accounts next to a bank's name, passport, driver's licence and business numbers, IP and street "
                "addresses); each piece found is replaced by its kind's placeholder, as in `<전화번호>`.\n\n"
                + _table(["step", "columns", "found (kind: pieces)", "rows with any", "done", "kinds checked"], rows))
    checked = [(s["key"], s["info"]["decontaminate"]) for s in manifest["steps"]
               if (s.get("info") or {}).get("decontaminate")]
    if checked:
        text += ("\n\nDecontamination: rows overlapping an evaluation set were "
                 + ("dropped" if all(i["action"] == "drop" for _, i in checked) else "dropped or marked")
                 + "; each is listed with the item it matched in `tables/contamination.parquet`.\n\n" + _table(
                     ["step", "against (pieces of text)", "rows found", "unit", "columns"],
                     [[k, ", ".join(f"{b} ({n:,})" for b, n in i["items"].items()),
                       ", ".join(f"{b}: {n:,}" for b, n in i["found"].items()) or "none",
                       f"{i['unit']}, {i['n']}-grams, >= {i['min_overlap']:.0%} of an item",
                       ", ".join(f"`{c}`" for c in i["columns"])] for k, i in checked]))
    else:
        text += "\n\nNo `decontaminate` step ran: the rows were not checked against evaluation sets (KoBEST...)."
    filters = []
    for s in manifest["steps"]:
        info = s.get("info") or {}
        if "quality" in info:
            filters.append(f"`{s['key']}` (Korean quality heuristics): dropped " + (", ".join(
                f"{k}: {n:,}" for k, n in info["quality"]["dropped"].items()) or "none"))
        if "language" in info:
            filters.append(f"`{s['key']}` (language, keeping {', '.join(info['language']['keep'])}; py3langid): "
                           + ", ".join(f"{k}: {n:,}" for k, n in info["language"]["detected"].items()) + " detected")
    if filters:
        text += "\n\nFilters: " + "; ".join(filters) + "."
    return "## Data safety\n\n" + text


def template_section(t: dict) -> str:
    """The template the rows were rendered with: each variant the published rows use, with their count (counted
    in the rows themselves; else as the template step saw them, said so), and its chat template."""
    step = t.get("used_at_step")
    used = t.get("used") or step or {v: None for v in ("prompt_input", "prompt_no_input") if t.get(v)}
    where = " (as the template step counted them, before later steps)" if not t.get("used") and step else ""
    parts = [f"## Prompt template\n\n`{t['name']}`, rendered into `{t['column']}`."]
    for variant, n in used.items():
        if variant not in t:
            continue
        rows = f" ({n:,} rows{where})" if n is not None else ""
        what = {"prompt_input": "rows with an input (or earlier turns)", "prompt_no_input": "rows without an input"}.get(
            variant, variant)
        parts.append(f"`{variant}`, for {what}{rows}:\n\n```text\n{t[variant]}\n```")
    if t.get("chat_template"):
        parts.append("The same rendering as a chat template (`tokenizer.chat_template`; trainers/sft.py saves it with "
                     "the model):\n\n<details><summary>Jinja</summary>\n\n```jinja\n" + t["chat_template"].strip() +
                     "\n```\n\n</details>")
    return "\n\n".join(parts)


def format_columns(manifest: dict) -> tuple[str, ...]:
    """The columns the version's format and type hold (TRL's dataset types)."""
    if manifest.get("type") == "conversational":
        return CONVERSATIONAL[manifest["format"]]
    return FORMATS[manifest["format"]]


def example(row: dict) -> str:
    """One example row for the card: its text and other columns as JSON, each conversation as a transcript."""
    chats = {k: v for k, v in row.items() if is_conversation(v)}
    # values as JSON has them (a null is null, a number a number); long text cut
    plain = {k: (_cell(v) if isinstance(v, str) else v) for k, v in row.items() if k != "llm_calls" and k not in chats}
    out = "```json\n" + json.dumps(plain, ensure_ascii=False, indent=2, default=str) + "\n```"
    for k, v in chats.items():
        out += f"\n\n`{k}`:\n\n```text\n{transcript(v)}\n```"
    return out


def render_card(manifest: dict, rows: Rows, repo: str | None = None) -> str:
    name, version = manifest["name"], manifest["version"]
    feats = features({rows.names[0]: rows.body.head(0)}) if rows.names else None
    meta = yaml.safe_dump(front_matter(manifest, feats, rows.body.estimated_size()), allow_unicode=True, sort_keys=False)
    recipe = manifest["recipe"]
    terms = manifest.get("terms", {})
    out = [f"---\n{meta}---", f"# {recipe['card']['pretty_name'] or name}"]
    for w in terms.get("content_warnings", []):
        out.append(f"> **Content warning.** {w}")
    demo = sorted({r for u in (manifest.get("llm_usage") or {}).get("steps", {}).values()
                   for r, m in (u.get("roles") or {}).items() if str(m).startswith("datafactory-sample-answers")})
    if terms.get("samples") or demo:
        out.append("> **Built from samples.** " + (
            "The rows of " + ", ".join(f"`{x}`" for x in terms["samples"]) + " come from the samples shipped with "
            "datafactory (written by its team in the corpora's formats), not from the corpora. " if terms.get("samples")
            else "") + (f"The LLM answers of {', '.join(f'`{r}`' for r in demo)} are the sample answers the team wrote "
                        "by hand (the offline demo profile). " if demo else "") +
            "A demonstration of the pipeline, not data to train on.")
    if recipe["description"]:
        out.append(recipe["description"].strip())
    out.append(f"Built by datafactory from the recipe `{name}` "
               f"(`{manifest['recipe_file']}`), version `{version}`, on {manifest['created_at'][:10]}. "
               f"Format: `{manifest['format']}`" + (", conversational (lists of `{role, content}` messages)"
                                                    if manifest.get("type") == "conversational" else "")
               + f" (TRL dataset type). {manifest['rows']:,} rows.")
    out.append(loading_section(name, version, repo))
    licence = ("## Sources and licences\n\n" + _table(
        ["source", "kind", "rows", "skipped (reason: records)", "quarantined", "licence", "redistribution"],
        [[n, s["kind"], f"{s.get('rows', 0):,}", ", ".join(f"{k}: {v:,}" for k, v in (s.get("skipped") or {}).items()) or "-",
          sum((s.get("quarantined") or {}).values()), s.get("license") or "see source",
          REDISTRIBUTION[s.get("redistribute")]]
         for n, s in manifest["sources"].items()]) + "\n\nThe terms of each source: [LICENSE.md](LICENSE.md).")
    if terms.get("restrictions"):
        licence += (" Sources whose terms forbid redistribution: "
                    + ", ".join(f"`{r['source']}`" for r in terms["restrictions"]) + ".")
    out.append(licence)
    if manifest["upstream"]:
        out.append("Built from: " + ", ".join(f"`{u['dataset']}@{u['version']}`" for u in manifest["upstream"].values()))
    out.append("## Build steps\n\n" + _table(
        ["#", "step", "parameters", "rows in", "rows out", "dropped (reason: rows)"],
        [[i, s["key"], _params(s["params"]) + (f" (sources: {', '.join(s['sources'])})" if s.get("sources") else ""),
          f"{s['rows_in']:,}", f"{s['rows_out']:,}", ", ".join(f"{k}: {v:,}" for k, v in s["dropped"].items()) or "-"]
         for i, s in enumerate(manifest["steps"])]))
    out.append(safety_section(manifest))
    if manifest.get("llm_usage"):
        out.append(llm_section(manifest["llm_usage"]))
    if manifest.get("labels"):
        out.append(labels_section(manifest["labels"], judge_of(manifest)))
    if manifest.get("warnings"):
        out.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in manifest["warnings"]))
    out.append("## Splits\n\n" + _table(["split", "rows", "file"],
                                         [[s, f"{n:,}", manifest["files"][s]] for s, n in manifest["splits"].items()]))
    if feats is not None:
        out.append("## Columns\n\n" + _table(["column", "feature type (datasets)"],
                                             [[f["name"], f"`{_feature_repr(f)}`"] for f in feats]) +
                   "\n\nEvery row carries `id` (`<source>/<record key>`, unique and stable) and `source` (the recipe "
                   "source it came from), so any row can be traced to its original record.")
    stats = length_stats(rows, format_columns(manifest))
    if stats:
        section = "## Length statistics (characters)\n\n" + _table(["column", "min", "mean", "median", "max"], stats)
        if LENGTH_PLOT in manifest.get("plots", []):
            section += f"\n\n![Length distributions per split]({LENGTH_PLOT})"
        out.append(section)
    if manifest.get("template"):
        out.append(template_section(manifest["template"]))
    first = rows.head(3) if rows.names else None
    if first is not None and first.height:
        examples = "\n\n".join(example(row) for row in first.to_dicts())
        out.append(f"## Examples ({rows.names[0]})\n\n{examples}")
    return "\n\n".join(out) + "\n"
