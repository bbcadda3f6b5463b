"""Evaluate trained models, comparably: reward-model accuracy on preference data, G-Eval of a model's answers
through the LLM layer (cached and costed like every LLM step), and KoBEST COPA / HellaSwag accuracy by
log-likelihood. Results go to evals/<model>.json (tasks merge across runs) and evals/results.md, one row per model.

    python trainers/eval.py --reward_model models/rm_v3 --dataset rm_v3            # accuracy + margins (test split)
    python trainers/eval.py --model models/sft_v2 --model models/ppo-ppo_v1 --kobest
    python trainers/eval.py --model models/ppo-ppo_v1 --geval ppo_v1 --llm openai --limit 100   # the judge is paid
    python trainers/eval.py --model models/sft_v2 --kobest --kobest_path ~/kobest_v1   # the real KoBEST (Hub JSONL or TSV)

G-Eval: the model answers the dataset's prompts (greedy, cut at EOS and at the template's next section), and the
profile's `judge` role scores each answer on the criteria of `--data_type` (conversation by default), 1-5 each.
KoBEST: COPA as "premise 왜냐하면/그래서 alternative", HellaSwag as "context ending"; `acc` compares summed token
log-likelihoods of the choices, `acc_norm` the same per character of the choice (lm-evaluation-harness's way).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

from datafactory.errors import DataFactoryError
from datafactory.training import (LibraryLog, TrainingError, as_text, generate, load_model, load_tokenizer, project_root,
                                  read_meta, resolve_dataset, reward_accuracy, say, stop_strings, to_device)

COPA_CONNECTOR = {"원인": "왜냐하면", "결과": "그래서"}


# -- KoBEST by log-likelihood ----------------------------------------------------------------------------------
def kobest_rows(path: Path, split: str | None) -> dict[str, list[dict]]:
    from datafactory.sources.kobest import KobestOptions, KobestSource

    frame = KobestSource("kobest", str(path), KobestOptions(), on_error="fail").read().frame
    out = {}
    for task in ("copa", "hellaswag"):
        rows = frame.filter(frame["task"] == task) if "task" in frame.columns else frame.clear()
        splits = rows["kobest_split"].unique().to_list() if rows.height else []
        pick = split if split in splits else next((s for s in ("test", "validation", "train") if s in splits), None)
        if pick:
            out[task] = [{**r, "kobest_split": pick} for r in rows.filter(rows["kobest_split"] == pick).to_dicts()]
    if not out:
        raise TrainingError(f"{path}: no KoBEST COPA or HellaSwag rows (see docs/SOURCES.md section 5 for the layouts)")
    return out


def choices(task: str, row: dict) -> tuple[str, list[str]]:
    if task == "copa":
        connector = COPA_CONNECTOR.get(row["question"].strip(), row["question"].strip())
        return f"{row['premise'].rstrip()} {connector}", [" " + row["alternative_1"], " " + row["alternative_2"]]
    return row["context"].rstrip(), [" " + row[f"ending_{i}"] for i in range(1, 5)]


def loglikelihoods(model, tok, pairs: list[tuple[str, str]], batch_size: int = 8) -> list[float]:
    """Sum of the log-probabilities of each continuation's tokens after its context."""
    import torch

    device = next(model.parameters()).device
    seqs = []
    for ctx, cont in pairs:
        c, k = tok(ctx, add_special_tokens=False)["input_ids"], tok(cont, add_special_tokens=False)["input_ids"]
        seqs.append((c + k, len(c)))
    out = []
    model.eval()
    for i in range(0, len(seqs), batch_size):
        batch = seqs[i:i + batch_size]
        width = max(len(s) for s, _ in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, (s, _) in enumerate(batch):
            ids[j, :len(s)], mask[j, :len(s)] = torch.tensor(s), 1
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
        for j, (s, start) in enumerate(batch):
            targets = torch.tensor(s[start:], device=device)
            out.append(float(logp[j, start - 1:len(s) - 1].gather(-1, targets[:, None]).sum()))
    return out


def undecontaminated(model: str, benchmarks: list[str], data_dir) -> list[str]:
    """Warnings for each benchmark that some of the model's training data was not decontaminated against: its
    dataset (with every dataset upstream of it), and in turn its SFT or base model's, where datafactory.json names
    one. Each dataset counts as checked against what any step of it or upstream of it checked."""
    from datafactory.store import Store

    seen, per_dataset, queue = set(), {}, [model]
    while queue:
        folder = queue.pop(0)
        meta = read_meta(folder) or {}
        if folder in seen or not meta.get("dataset"):
            continue
        seen.add(folder)
        queue += [meta[k] for k in ("sft_model", "base_model") if isinstance(meta.get(k), str)]
        try:
            ds = resolve_dataset(meta["dataset"]["ref"], data_dir)
        except DataFactoryError:
            continue
        checked, store, manifests = set(), Store(ds.data_dir), [ds.manifest]
        while manifests:
            m = manifests.pop()
            for step in m.get("steps", []):
                checked |= set(((step.get("info") or {}).get("decontaminate") or {}).get("against", []))
            for up in (m.get("upstream") or {}).values():
                try:
                    manifests.append(store.manifest(up["dataset"], up["version"]))
                except (DataFactoryError, OSError):
                    pass
        per_dataset[ds.ref] = checked
    out = []
    for b in benchmarks:
        missing = [ref for ref, checked in per_dataset.items() if b not in checked]
        if missing:
            out.append(f"{model} was trained on {', '.join(missing)}, not decontaminated against {b}: its score may "
                       "count items it trained on (add `- decontaminate: {columns: [...], against: [{kobest: PATH}]}` "
                       "to the recipe)")
    return out


def kobest(model, tok, rows: dict[str, list[dict]]) -> dict:
    results = {}
    for task, items in rows.items():
        pairs, spans = [], []
        for r in items:
            ctx, options = choices(task, r)
            spans.append((len(pairs), len(options), [len(o.strip()) for o in options]))
            pairs += [(ctx, o) for o in options]
        ll = loglikelihoods(model, tok, pairs)
        acc = acc_norm = 0
        for r, (start, n, lengths) in zip(items, spans):
            scores = ll[start:start + n]
            acc += max(range(n), key=lambda i: scores[i]) == r["label"]
            acc_norm += max(range(n), key=lambda i: scores[i] / max(1, lengths[i])) == r["label"]
        results[f"kobest_{task}"] = {"split": items[0]["kobest_split"], "n": len(items),
                                     "acc": round(acc / len(items), 4), "acc_norm": round(acc_norm / len(items), 4)}
    return results


# -- G-Eval through the LLM layer ---------------------------------------------------------------------------
def geval(model, tok, dataset: str, args, template: dict | None) -> dict:
    import polars as pl

    from datafactory import default_data_dir
    from datafactory.engine import Factory
    from datafactory.project import recipes_dir
    from datafactory.steps.base import StepContext
    from datafactory.steps.judge import Judge, JudgeParams

    ds = resolve_dataset(dataset, args.data_dir, columns=("prompt",), stage="G-Eval")
    split = args.split if args.split in ds.splits else ds.splits[0]
    rows = ds.split(split)
    rows = rows.select(range(min(args.limit, len(rows)))) if args.limit else rows
    raw = list(rows["prompt"])
    prompts = as_text(tok, raw)  # a conversation rendered by the model's chat template
    instructions = (list(rows["instruction"]) if "instruction" in rows.column_names else
                    [p if isinstance(p, str) else p[-1]["content"] for p in raw])
    history = [[] if isinstance(p, str) else list(p[:-1]) for p in raw]  # the judge reads the turns before
    answers = generate(model, tok, prompts, max_new_tokens=args.max_new_tokens,
                       stops=stop_strings(template or ds.template))
    df = pl.DataFrame({"id": list(rows["id"]), "source": list(rows["source"]), "instruction": instructions,
                       "history": history, "response": [a["text"] for a in answers]},
                      schema_overrides={"history": pl.List(pl.Struct({"role": pl.String, "content": pl.String}))})
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    factory = Factory(data_dir, recipes_dir(), llm=args.llm, max_cost=args.max_cost, log=say)
    judge = Judge(JudgeParams(data_type=args.data_type), factory.project_root)
    factory.profile.identity("judge", "eval --geval")  # a missing role fails before any answer is generated
    llm = factory.llm_client().for_step("eval --geval")
    ctx = StepContext(seed=0, work_dir=factory.store.cache / "eval", llm=llm)
    judged = judge.apply(df, ctx)
    totals = judged["score_total"].to_list()
    per = {}
    for scores in judged["scores"].to_list():
        for s in scores:
            per.setdefault(s["criterion"], []).append(s["score"])
    n = len(judge.criteria)
    return {"dataset": ds.ref, "split": split, "data_type": args.data_type, "answers": len(prompts),
            "judged": len(totals), "dropped": dict(ctx.dropped), "profile": factory.profile.name,
            "judge": factory.profile.identity("judge")["model"],
            "mean_total": round(statistics.fmean(totals), 3) if totals else None, "max_total": 5 * n,
            "criteria": {c: round(statistics.fmean(v), 3) for c, v in per.items()},
            "empty_answers": sum(not a["text"] for a in answers),
            "stopped_with_eos": round(sum(a["eos"] for a in answers) / max(1, len(answers)), 3),
            "llm": llm.usage.to_json(),
            "examples": [{"instruction": i, "answer": a["text"]} for i, a in zip(instructions[:3], answers)]}


# -- results ------------------------------------------------------------------------------------------------
def record(out_dir: Path, model: str, results: dict) -> Path:
    meta = read_meta(model) or {}
    name = Path(model).name
    path = out_dir / f"{name}.json"
    old = json.loads(path.read_text("utf-8")) if path.exists() else {}
    doc = {"model": str(model), "stage": meta.get("stage"), "trained_on": meta.get("dataset", {}).get("ref"),
           "tasks": {**old.get("tasks", {}), **results},
           "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), "utf-8")
    return path


def table(out_dir: Path) -> str:
    docs = [json.loads(p.read_text("utf-8")) for p in sorted(out_dir.glob("*.json"))]
    lines = ["| model | stage | trained on | RM accuracy | COPA acc | HellaSwag acc (norm) | G-Eval total | G-Eval n |",
             "|---|---|---|---|---|---|---|---|"]
    for d in docs:
        t = d.get("tasks", {})
        rm, copa, hs, ge = (t.get(k, {}) for k in ("reward_accuracy", "kobest_copa", "kobest_hellaswag", "geval"))

        def fmt(x, spec=".3f"):
            return "-" if x is None else format(x, spec)

        lines.append(f"| {Path(d['model']).name} | {d.get('stage') or '-'} | {d.get('trained_on') or '-'} | "
                     f"{fmt(rm.get('accuracy'))} | {fmt(copa.get('acc'))} | {fmt(hs.get('acc'))} ({fmt(hs.get('acc_norm'))}) | "
                     f"{fmt(ge.get('mean_total'), '.2f')}{'/' + str(ge['max_total']) if ge.get('max_total') else ''} | "
                     f"{ge.get('judged', '-')} |")
    text = "\n".join(lines) + "\n"
    (out_dir / "results.md").write_text("# Evaluations\n\nWritten by `python trainers/eval.py`; one row per model.\n\n"
                                        + text, "utf-8")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="a causal LM folder (repeat to compare)")
    ap.add_argument("--reward_model", action="append", default=[], help="a reward model folder (repeat to compare)")
    ap.add_argument("--dataset", help="the preference set for --reward_model (default: the one it was trained on)")
    ap.add_argument("--split", default="test", help="the split evaluated (default test; the first split when absent)")
    ap.add_argument("--kobest", action="store_true", help="KoBEST COPA and HellaSwag accuracy of each --model")
    ap.add_argument("--kobest_path", default=None, help="KoBEST files (default: the shipped samples, data/samples/kobest/hub)")
    ap.add_argument("--kobest_split", default="test", help="test (default; the last split present otherwise)")
    ap.add_argument("--geval", metavar="DATASET", help="G-Eval each --model's answers to this dataset's prompts")
    ap.add_argument("--data_type", default="conversation", choices=["conversation", "hatespeech", "translation"])
    ap.add_argument("--limit", type=int, default=0, help="at most this many prompts for --geval (0: all)")
    ap.add_argument("--max_new_tokens", type=int, default=128)
    ap.add_argument("--llm", default=None, help="the LLM profile whose judge role scores (default $DATAFACTORY_LLM or default)")
    ap.add_argument("--max_cost", type=float, default=None, help="stop the judge's calls at this many USD")
    ap.add_argument("--data_dir", default=None, help="the store (default: the project's data/)")
    ap.add_argument("--output", default=None, help="where results go (default: evals/ in the project)")
    ap.add_argument("--verbose", action="store_true", help="the libraries' warnings here (by default: eval.log "
                                                           "beside the results)")
    args = ap.parse_args(argv)
    if not (args.model or args.reward_model):
        ap.error("give --model and/or --reward_model")
    if args.model and not (args.kobest or args.geval):
        ap.error("--model needs a task: --kobest and/or --geval DATASET")
    out_dir = Path(args.output) if args.output else project_root() / "evals"
    log = None if args.verbose else LibraryLog()
    if log is not None:
        log.attach(out_dir, "eval.log")
    try:
        for rm in args.reward_model:
            ref = args.dataset or (read_meta(rm) or {}).get("dataset", {}).get("ref")
            if not ref:
                raise TrainingError(f"{rm} has no datafactory.json naming its dataset: pass --dataset NAME")
            ds = resolve_dataset(ref, args.data_dir, columns=("prompt", "chosen", "rejected"), stage="--reward_model")
            split = args.split if args.split in ds.splits else ds.splits[0]
            tok = load_tokenizer(rm)
            result = {"dataset": ds.ref, "split": split, **reward_accuracy(to_device(load_model("score", rm, _Args(), _Args(), tok)), tok, ds.split(split))}
            say(f"{rm}: reward accuracy on {ds.ref} {split}: {result.get('accuracy', 0):.3f} ({result['pairs']} pairs), "
                  f"mean margin {result.get('margin', {}).get('mean', 0):+.3f}")
            record(out_dir, rm, {"reward_accuracy": result})
        rows = None
        for m in args.model:
            tok = load_tokenizer(m)
            model = to_device(load_model("causal", m, _Args(), _Args(), tok))
            results = {}
            if args.kobest:
                path = Path(args.kobest_path).expanduser() if args.kobest_path else project_root() / "data" / "samples" / "kobest" / "hub"
                rows = rows or kobest_rows(path, args.kobest_split)
                results.update(kobest(model, tok, rows))
                for k, v in results.items():
                    say(f"{m}: {k} ({v['split']}, {v['n']}): acc {v['acc']:.3f}, acc_norm {v['acc_norm']:.3f}")
                warnings = undecontaminated(m, sorted(results), args.data_dir)
                for w in warnings:
                    say(f"warning: {w}")
                if warnings:
                    results["contamination_warnings"] = warnings
            if args.geval:
                template = (read_meta(m) or {}).get("dataset", {}).get("template")
                results["geval"] = g = geval(model, tok, args.geval, args, template)
                say(f"{m}: G-Eval ({g['data_type']}) on {g['dataset']} {g['split']}: mean total "
                      f"{g['mean_total']}/{g['max_total']} over {g['judged']} answers (judge {g['judge']}"
                      + (": the offline demo's stand-in, not an LLM" if g["judge"].startswith("datafactory-sample")
                         else "") + f", ${g['llm']['cost_usd']:.4f})")
            record(out_dir, m, results)
    except DataFactoryError as e:
        if log is not None:
            log.restore()
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if log is not None:
            log.restore()
    say(table(out_dir), end="")
    say(f"results: {out_dir / 'results.md'}")
    return 0


class _Args:
    """Model loading for evaluation: the stored dtype on CPU, bf16 where a GPU has it, no quantisation."""
    dtype = None
    load_in_4bit = load_in_8bit = False

    @property
    def bf16(self):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


if __name__ == "__main__":
    raise SystemExit(main())
