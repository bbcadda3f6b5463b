"""The ``datafactory`` command line (typer + rich). Logs go to stderr; results to stdout.

A user mistake prints one line, ``error: ...``, and exits 1; a usage mistake gets the usage line and exits 2;
Ctrl-C says what is cached and exits 130; never a traceback. Global options (``--data``, ``--recipes``,
``--llm``, ``--quiet``) may come before or after the command.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

# polars' allocator (jemalloc) keeps freed pages for 10 s by default; a build frees whole columns step after step,
# so it gives them back within half a second instead (before polars loads; worker processes inherit it)
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:500,muzzy_decay_ms:0")


def _lazy_polars() -> None:
    """polars (a tenth of a second to import) loads on first use, not at start: a no-op build, `list`, `pin` or
    `--help` never uses it. Only in the CLI's own process, before any module imports polars. (importlib's
    LazyLoader would load it at the next `import polars`: the import system reads ``__spec__``; this module only
    loads on an attribute it does not have yet.)"""
    import importlib.util
    import threading
    import types

    if "polars" in sys.modules:
        return
    spec = importlib.util.find_spec("polars")
    if spec is None or spec.loader is None:
        return
    lock = threading.RLock()

    class LazyModule(types.ModuleType):
        def __getattr__(self, name):
            with lock:
                if type(self) is LazyModule and not self.__dict__.get("_loading"):
                    self.__dict__["_loading"] = True
                    try:
                        spec.loader.exec_module(self)
                    finally:
                        del self.__dict__["_loading"]
                    self.__class__ = types.ModuleType
            if type(self) is not LazyModule:  # loaded (by this or another thread): the plain module's lookup
                return getattr(self, name)
            raise AttributeError(f"module 'polars' has no attribute '{name}'")  # polars' own import, mid-way

    module = importlib.util.module_from_spec(spec)
    module.__class__ = LazyModule
    sys.modules["polars"] = module


_lazy_polars()
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

import datafactory
from datafactory.console import utf8_output
from datafactory.errors import DataFactoryError
from datafactory.jsonl import BadLine, records
from datafactory.llm.cost import EXACT_UP_TO
from datafactory.store import DEFAULT_KEEP

# What --help shows for a value: a word a user reads (NAME[@VERSION], N, DIR), not typer's <str>, <int range>,
# <list[str]> or {ref}; an argument's name in capitals, as usage lines write it
METAVARS = {"ref": "NAME[@VERSION]", "name": "NAME", "a": "NAME@VERSION", "b": "NAME@VERSION", "row_id": "ROW_ID",
            "kind": "KIND", "path": "PATH", "output": "FILE", "file": "FILE", "max_cost": "USD", "source": "NAME=PATH",
            "rows": "N", "keep": "N", "head": "N", "port": "PORT", "host": "ADDRESS", "repo": "ORG/NAME", "dry_run": "DIR",
            "note": "TEXT", "option": "KEY=VALUE", "encoding": "ENCODING", "on_error": "fail|quarantine", "data": "DIR",
            "recipes": "DIR", "llm": "PROFILE", "annotator": "NAME", "sources": "NAME,...", "guideline": "FILE",
            "dataset": "NAME[@VERSION]"}


def _help_as_users_read_it() -> None:
    from typer import core

    def metavar(param) -> str:
        return param.metavar or METAVARS.get(param.name, param.name.upper().replace("_", "-"))

    def usage(self) -> str:
        name = metavar(self) if self.required else f"[{metavar(self)}]"
        return name + ("..." if self.nargs != 1 else "")

    core.TyperArgument._usage_display_name = usage
    core.TyperArgument._rich_display_name = metavar
    core.TyperArgument.display_type_rich = lambda self, ctx: None
    core.TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else metavar(self)


_help_as_users_read_it()

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Build versioned Korean RLHF datasets from declarative recipes, and load them by name. "
                       "Global options may also come after the command.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

GLOBAL_VALUE_OPTIONS = ("--data", "--recipes", "--llm")
GLOBAL_FLAGS = ("--quiet", "-q")


class State:
    data: Path | None = None  # None: found by the project rule (datafactory.project)
    recipes: Path | None = None
    llm: str | None = None
    quiet: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        print(f"datafactory {datafactory.__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    data: Annotated[Optional[Path], typer.Option("--data", help="The dataset store (default: $DATAFACTORY_DATA, else data/ of the project: the nearest folder above holding recipes/).")] = None,
    recipes: Annotated[Optional[Path], typer.Option("--recipes", help="The recipe folder (default: $DATAFACTORY_RECIPES, else recipes/ of the project).")] = None,
    llm: Annotated[Optional[str], typer.Option("--llm", help="LLM profile: profiles/NAME.yaml or a path (default: $DATAFACTORY_LLM, else `default`: the offline sample answers).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output; results only.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
):
    state.data, state.recipes, state.llm, state.quiet = data, recipes, llm, quiet


def _data() -> Path:
    data = state.data if state.data is not None else datafactory.default_data_dir(required=False, script=False)
    if data.exists() and not data.is_dir():
        raise DataFactoryError(f"--data {data}: a file, not a folder; give the store's folder (created if missing)")
    return data


def _recipes() -> Path:
    from datafactory.project import recipes_dir

    return state.recipes if state.recipes is not None else recipes_dir(script=False)


def _recipe_name(name: str) -> str:
    """``recipes/sft_v1.yaml`` (a path) works like ``sft_v1``: its folder becomes the recipe folder, and the
    store is found from there unless --data says otherwise."""
    if not name.endswith((".yaml", ".yml")) and "/" not in name:
        return name
    path = Path(name).expanduser()
    if not path.is_file():
        raise DataFactoryError(f"{name}: no such recipe file (looked at {path.resolve()})")
    from datafactory.project import find_root

    state.recipes = path.resolve().parent
    if state.data is None and not os.environ.get("DATAFACTORY_DATA"):
        root = find_root(state.recipes)
        state.data = (root if root is not None else state.recipes.parent) / "data"
    return path.stem


def _log(msg: str) -> None:
    if not state.quiet:
        err.print(msg, highlight=False, markup=False)


def _overrides(items: list[str] | None) -> dict[str, str]:
    found = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DataFactoryError(f"--source '{item}': write it as NAME=PATH")
        found[name] = str(Path(path).expanduser().resolve())
    return found


@contextlib.contextmanager
def _progress(description: str, total: int | None = None):
    """A transient rich progress bar on stderr (done/total: files to read, rows to process); nothing with
    --quiet or when stderr is not a terminal. A step that reports no progress jumps to its total when done."""
    if state.quiet or not err.is_terminal:
        yield lambda n=1, **kw: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n=1, total=None, info=None):
            bar.update(task, advance=n, **({"total": total} if total is not None else {}),
                       **({"description": f"{description}  {info}"} if info else {}))

        yield advance
        if total is not None:
            bar.update(task, completed=total)


def _factory(sources: list[str] | None = None, max_cost: float | None = None):
    from datafactory.engine import Factory

    return Factory(_data(), _recipes(), overrides=_overrides(sources), log=_log, progress=_progress, llm=state.llm,
                   max_cost=max_cost)


def _store():
    """The store the command reads. Outside any project, with no --data and no ./data, an error naming where it
    looked (as `build` does), not an empty listing that exits 0."""
    from datafactory.store import Store

    data = _data()
    if state.data is None and not data.is_dir() and not os.environ.get("DATAFACTORY_DATA"):
        from datafactory.project import data_dir as find_data

        find_data(required=True, script=False, hint="pass --data DIR")  # raises: no project found, where it looked
    return Store(data)


SourceOpt = Annotated[Optional[list[str]], typer.Option("--source", "-s", help="NAME=PATH: read the recipe's source NAME from PATH (your download: zip, folder or glob).")]


@app.command()
def build(name: Annotated[str, typer.Argument(help="Recipe name (recipes/NAME.yaml), or the path of a recipe file.")],
          source: SourceOpt = None,
          max_cost: Annotated[Optional[float], typer.Option("--max-cost", min=0, help="USD this build may pay LLM endpoints: refused before any call if the estimate is over it; stops cleanly at it (what was paid is kept).")] = None):
    """Build a recipe (and what it depends on) into a versioned dataset. Prints NAME@VERSION last."""
    from datafactory.sources.base import start_forkserver

    # before the engine's imports: the workers' forkserver starts on the other core meanwhile. Only here, where the
    # main module is datafactory's own: the forkserver imports the main module, and a user's script that builds at
    # its top level, unguarded, would build again in it (with workers, multiprocessing asks for the guard anyway)
    start_forkserver()
    name = _recipe_name(name)
    factory = _factory(source, max_cost)
    try:
        if max_cost is not None:
            est = _estimate_total(factory.estimate(name))
            if est["cost_usd"] > max_cost:
                raise DataFactoryError(f"the estimated cost of building {name} is ${est['cost_usd']:.4f} for "
                                       f"{est['calls']:,} calls, over --max-cost ${max_cost:.4f}; nothing was called "
                                       f"(see `datafactory plan {name}`)")
        result = factory.build(name)
    except KeyboardInterrupt as e:
        err.print(f"{'terminated' if isinstance(e, Terminated) else 'interrupted'}; {factory.interrupted()}, run the "
                  "same command to resume", markup=False, highlight=False)
        raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None
    for up in result.upstream:
        _log(f"upstream {up.ref}: {'built' if up.built else 'up to date'}")
    if result.built:
        m = result.manifest
        _log(f"built {result.ref}: {m['rows']:,} rows ({', '.join(f'{s} {n:,}' for s, n in m['splits'].items())})")
    else:
        _log(f"{result.ref} is up to date; nothing to do")
    print(result.ref)


def _estimate_total(estimate: dict) -> dict:
    total = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    for u in estimate.values():
        for k in total:
            total[k] += u.get("estimated", {}).get(k, 0)
    return total


@app.command()
def plan(name: Annotated[str, typer.Argument(help="Recipe name, or the path of a recipe file.")], source: SourceOpt = None,
         exact_tokens: Annotated[bool, typer.Option("--exact-tokens", help=f"Count every prompt's tokens; by default a step with over {EXACT_UP_TO:,} requests counts a random {EXACT_UP_TO:,} of them and scales the rest by length (the error is shown).")] = False):
    """Show what `build NAME` would run and what is cached, and, for LLM steps, the calls not in the store with
    their estimated tokens and cost, without calling anything."""
    name = _recipe_name(name)
    factory = _factory(source)
    factory.exact_tokens = exact_tokens
    p = factory.plan(name)

    def show(p, indent=""):
        status = "built" if p.built else "to build"
        out.print(f"{indent}{p.recipe.name}@{p.version}  [{status}]", highlight=False, markup=False)
        for sname, up in p.upstream.items():
            if up is not None:
                show(up, indent + "  ")
            else:
                out.print(f"{indent}  {sname}: pinned {p.upstream_versions[sname]}", markup=False)
        if p.built:
            return
        for sname, sp in p.sources.items():
            out.print(f"{indent}  source {sname} ({sp.source.kind}): {'cached' if sp.cached else 'read'}", markup=False)
        last_cached = max((i for i, s in enumerate(p.steps) if s.cached), default=-1)
        for i, s in enumerate(p.steps):
            out.print(f"{indent}  {s.spec.key}: {'cached' if i <= last_cached else 'run'}", markup=False)

    show(p)

    def has_llm(p) -> bool:
        return any(sp.step.roles() for sp in p.steps) or any(has_llm(u) for u in p.upstream.values() if u is not None)

    if p.built or not has_llm(p):
        return
    from datafactory.engine import describe_problems

    problems = factory.llm_problems(name)
    if problems:  # what `build` would stop at before running anything
        out.print("cannot call yet: " + describe_problems(problems), markup=False)
    estimate = factory.estimate(name)
    from datafactory.llm.cost import counter

    out.print(f"LLM calls (estimated; nothing is called; tokens counted by {counter()}):", markup=False)
    bounds = sorted({u["bound"] for u in estimate.values() if u.get("bound")})
    for key, u in estimate.items():
        e = u.get("estimated", {})
        mark = "<=" if u.get("bound") else "~"
        out.print(f"  {key}: {u['requests']:,} requests, {u['cache_hits']:,} in the store, {e.get('calls', 0):,} to call: "
                  f"{mark}{e.get('input_tokens', 0):,} input + {mark}{e.get('output_tokens', 0):,} output tokens, "
                  f"{mark}${e.get('cost_usd', 0):.4f}" + (" (a bound)" if u.get("bound") else ""), markup=False)
        if e.get("sampled"):
            sm = e["sampled"]
            out.print(f"    input tokens counted on a random {sm['counted']:,} of its {sm['requests']:,} prompts, the "
                      f"rest scaled by their length: within {max(sm['error'], 0.0001):.2%} 19 times in 20 "
                      "(--exact-tokens counts every one)", markup=False)
    t = _estimate_total(estimate)
    mark = "<=" if bounds else "~"
    out.print(f"  total: {t['calls']:,} calls, {mark}{t['input_tokens']:,} input + {mark}{t['output_tokens']:,} output "
              f"tokens, {mark}${t['cost_usd']:.4f}", markup=False)
    for b in bounds:
        out.print(f"  bound: steps after an upstream not built yet are estimated {b}: as many rows as every step "
                  "lets through with answers that pass every filter (fewer when real answers are filtered)", markup=False)


@app.command("list")
def list_():
    """Built datasets (latest version, rows, format) and recipes not built yet."""
    store = _store()
    table = Table("dataset", "latest", "versions", "pinned", "rows", "format", "built at")
    built = store.datasets()
    for name in built:
        v = store.latest(name) or store.versions(name)[-1]
        m = store.manifest(name, v)
        table.add_row(name, v, str(len(store.versions(name))), str(len(store.pins(name))), f"{m['rows']:,}",
                      m["format"], m["created_at"][:19])
    out.print(table)
    recipes = _recipes()
    from datafactory import yamlfile

    pending = [n for n in yamlfile.names(recipes) if n not in built]
    if pending:
        out.print("not built yet: " + ", ".join(pending), markup=False)


@app.command()
def show(ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
         rows: Annotated[int, typer.Option(min=0, help="Sample rows to print per split.")] = 3,
         as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False):
    """Summarise a built version: steps with row counts, splits, sources and sample rows."""
    import polars as pl

    from datafactory.conversations import row_lines

    store = _store()
    name, version = store.resolve(ref)
    m = store.check(name, version)
    if as_json:
        print(json.dumps(m, ensure_ascii=False, indent=2))
        return
    kind = m["format"] + (", conversational" if m.get("type") == "conversational" else "")
    out.print(f"{name}@{version}  format={kind}  rows={m['rows']:,}  built {m['created_at'][:19]}", markup=False)
    for pin in store.pins(name).get(version, []):
        out.print(f"pinned: {pin['note'] or '(no note)'} ({pin['at']})", markup=False)
    for w in m.get("warnings", []):
        out.print(f"warning: {w}", markup=False)
    steps = Table("step", "rows in", "rows out", "dropped", "cached", title="steps")
    for col in steps.columns:  # long reasons wrap (answers_merged_into_a_pair), nothing is cut
        col.overflow = "fold"
    for s in m["steps"]:
        steps.add_row(s["key"], f"{s['rows_in']:,}", f"{s['rows_out']:,}",
                      ", ".join(f"{k}={v:,}" for k, v in s["dropped"].items()), "yes" if s.get("cached") else "")
    out.print(steps)
    srcs = Table("source", "kind", "rows", "quarantined", "path", title="sources")
    for col in srcs.columns:
        col.overflow = "fold"
    for n, s in m["sources"].items():
        up = m.get("upstream", {}).get(n)  # a dataset source: the version it read, not a path
        where = f"{up['dataset']}@{up['version']}" if up else str(s["path"])
        srcs.add_row(n, s["kind"], f"{s.get('rows', 0):,}", str(sum((s.get("quarantined") or {}).values())), where)
    out.print(srcs)
    from datafactory.card import format_columns

    texts = format_columns(m)
    for split, f in m["files"].items():
        df = pl.read_parquet(store.version_dir(name, version) / f, n_rows=rows)
        out.print(f"[{split}] {m['splits'][split]:,} rows", markup=False)
        for row in df.to_dicts():  # a conversation as a transcript, a line a message; the LLM calls counted
            calls = row.pop("llm_calls", None)
            if calls:
                row["llm_calls"] = f"{len(calls)} (datafactory trace {name} '{row['id']}')"
            print(row_lines(row, texts=(*texts, "instruction")))


@app.command()
def diff(a: Annotated[str, typer.Argument(help="The first version, NAME@VERSION (a unique prefix of the version).")],
         b: Annotated[str, typer.Argument(help="The second version, NAME@VERSION or NAME (the latest).")],
         as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False):
    """Compare two versions: rows added/removed/changed per split, schema, recipe and code changes."""
    from datafactory.diff import diff as run_diff

    d = run_diff(_store(), a, b)
    if as_json:
        print(json.dumps(d, ensure_ascii=False, indent=2))
        return
    out.print(f"{d['a']} -> {d['b']}", markup=False)
    t = Table("split", "rows a", "rows b", "added", "removed", "changed", "moved in", "moved out")
    for s, x in d["splits"].items():
        t.add_row(s, f"{x['rows_a']:,}", f"{x['rows_b']:,}", f"{x['added']:,}", f"{x['removed']:,}", f"{x['changed']:,}",
                  f"{x['moved_in']:,}", f"{x['moved_out']:,}")
    out.print(t)
    for way, n in d["moved"].items():
        out.print(f"moved {way}: {n:,} rows (the same id, now in another split)", markup=False)
    sch = d["schema"]
    for what in ("added", "removed"):
        if sch[what]:
            out.print(f"columns {what}: {', '.join(sch[what])}", markup=False)
    for c, (x, y) in sch["retyped"].items():
        out.print(f"column {c}: {x} -> {y}", markup=False)
    for ch in d["recipe"]:
        out.print(f"recipe {ch['key']}: {json.dumps(ch['a'], ensure_ascii=False)} -> {json.dumps(ch['b'], ensure_ascii=False)}", markup=False)
    for ch in d["code"]:  # a module's digest, a library's version; None where it was not part of one side
        out.print(f"code of {ch['where']}: {ch['what']} {ch['a'] or '(none)'} -> {ch['b'] or '(none)'}", markup=False)
    for ch in d["made"]:  # the model behind a role, a prompt's text, the input files
        out.print(f"{ch['where']}: {ch['what']}: {ch['a'] or '(none)'} -> {ch['b'] or '(none)'}", markup=False)
    if not (d["recipe"] or d["code"] or d["made"] or d["schema"]["added"] or d["schema"]["removed"]):
        out.print("the recipe, its code, roles, prompts and inputs are the same", markup=False)


@app.command()
def card(ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")]):
    """Print the dataset card (README.md) of a built version."""
    store = _store()
    name, version = store.resolve(ref)
    sys.stdout.write((store.version_dir(name, version) / "README.md").read_text("utf-8"))


@app.command()
def push(ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION: the version to publish.")],
         repo: Annotated[str, typer.Option("--repo", help="The Hub dataset repo, ORG/NAME.")],
         private: Annotated[bool, typer.Option("--private", help="Push to a private repo (created private; an existing public repo is refused).")] = False,
         allow_restricted: Annotated[bool, typer.Option("--allow-restricted", help="Publish even though a source's terms forbid redistribution: you state that you have the right to.")] = False,
         dry_run: Annotated[Optional[Path], typer.Option("--dry-run", help="Write exactly what would be uploaded to DIR (new or empty) instead.")] = None):
    """Push a built version (split files, manifest, card, LICENSE.md, plots) to the Hugging Face Hub, tagged with
    its version id. Repos are public unless --private; datasets from sources that forbid redistribution (NIKL,
    AIHub) need --private. Token: HF_TOKEN or `hf auth login`."""
    from datafactory.hub import push as run_push

    result = run_push(_store(), ref, repo, private=private, allow_restricted=allow_restricted, dry_run=dry_run, log=_log)
    if result["dry_run"]:
        _log(f"dry run: {len(result['files'])} files for {repo} written to {dry_run}")
        for f in result["files"]:
            print(f)
    elif not result["pushed"]:
        _log(f"{result['ref']} is on {repo} already (tag {result['ref'].split('@')[1]}); nothing to do")
        print(result["url"])
    else:
        _log(f"pushed {result['ref']} to {repo}, tagged {result['ref'].split('@')[1]}")
        print(result.get("url") or repo)


@app.command()
def gc(keep: Annotated[int, typer.Option(min=0, help="Newest versions to keep per dataset; the latest and pinned versions always stay.")] = DEFAULT_KEEP,
       dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; write nothing.")] = False):
    """Remove old versions (not pinned ones), left-over staging folders and unused cache entries."""
    removed = _store().gc(keep=keep, dry_run=dry_run)
    for p in removed:
        print(p)
    _log(f"{'would remove' if dry_run else 'removed'} {len(removed)} paths")


@app.command()
def pin(ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (NAME: the latest version).")],
        note: Annotated[str, typer.Option(help="Why: e.g. the model trained on it.")] = ""):
    """Keep a version through every `gc` (the trainers pin what they train on). Prints NAME@VERSION."""
    name, version = _store().pin(ref, note)
    print(f"{name}@{version}")


@app.command()
def unpin(ref: Annotated[str, typer.Argument(help="NAME@VERSION.")],
          note: Annotated[Optional[str], typer.Option(help="Remove only the pin with this note.")] = None):
    """Let `gc` remove a pinned version again."""
    n = _store().unpin(ref, note)
    _log(f"removed {n} pin{'s' if n != 1 else ''} of {ref}")


@app.command()
def trace(ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
          row_id: Annotated[str, typer.Argument(help="The row's id, e.g. daily/SDRW2000000001.1#2.")],
          as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False):
    """Where a row came from: its source record, each step's value, and every LLM call that made it."""
    from datafactory.llm.store import ResponseStore
    from datafactory.trace import render, trace as run_trace

    store = _store()
    t = run_trace(store, ref, row_id, ResponseStore(store.responses) if store.responses.exists() else None,
                  base_dir=_recipes().resolve().parent)
    print(json.dumps(t, ensure_ascii=False, indent=2, default=str) if as_json else render(t))


llm_app = typer.Typer(no_args_is_help=True, help="The LLM response store: what was paid for, moved between machines.")
app.add_typer(llm_app, name="llm")


def _responses():
    from datafactory.llm.store import ResponseStore

    return ResponseStore(_store().responses)


def _write_new_jsonl(output: Path, rows) -> int:
    """The rows ``rows()`` gives, as JSONL in ``output``, a new file (checked before the rows are made): one that
    exists, or that cannot be written, is an error saying so, and a failure while writing leaves no file. Returns
    how many rows were written."""
    if output.exists():
        raise DataFactoryError(f"{output} exists; give a new file name")
    try:
        f = open(output, "x", encoding="utf-8")
    except OSError as e:
        raise DataFactoryError(f"{output}: cannot be written ({e.strerror}); give a new file in a folder that exists") from None
    n = 0
    try:
        with f:
            for row in rows():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    except BaseException:  # no half-written file is left (a failing store, Ctrl-C)
        output.unlink(missing_ok=True)
        raise
    return n


@llm_app.command("export")
def llm_export(output: Annotated[Path, typer.Argument(help="A JSONL file to write (new).")],
               ref: Annotated[Optional[str], typer.Option("--dataset", help="Only the requests this NAME[@VERSION] asked (all it needs to rebuild with the replay provider).")] = None):
    """Write the stored answers (and permanent failures) to a JSONL file, for `datafactory llm import` elsewhere."""
    keys = None
    if ref:
        store = _store()
        name, version = store.resolve(ref)
        from datafactory.publish import LLM_KEYS

        path = store.version_dir(name, version) / LLM_KEYS
        if not path.exists():
            raise DataFactoryError(f"{name}@{version} asked no LLM request (no {LLM_KEYS} in its folder)")
        keys = path.read_text("utf-8").split()
    n = _write_new_jsonl(output, lambda: _responses().export(keys))
    _log(f"exported {n:,} stored requests to {output}" + (f" (of the {len(keys):,} that {ref} asked)" if keys else ""))
    print(output)


@llm_app.command("import")
def llm_import(file: Annotated[Path, typer.Argument(help="A JSONL file from `datafactory llm export`.")]):
    """Add exported answers to this data folder's store (answers already here are kept)."""
    if not file.is_file():
        raise DataFactoryError(f"{file}: no such file")
    try:
        text = file.read_text("utf-8")
    except UnicodeDecodeError as e:
        raise DataFactoryError(f"{file}: not a text file (not UTF-8 at byte {e.start}); give a JSONL file written by "
                               "`datafactory llm export`") from None
    rows = []
    try:
        for i, row in records(text):
            if not isinstance(row, dict) or not {"key", "status", "kind", "model", "request"} <= set(row):
                raise DataFactoryError(f"{file}, line {i}: not an exported answer (a line needs key, status, kind, "
                                       "model and request)")
            rows.append(row)
    except BadLine as e:
        raise DataFactoryError(f"{file}, line {e.number}: not an exported answer ({e.reason})") from None
    added, kept = _responses().import_rows(rows)
    _log(f"imported {added:,} answers; {kept:,} were here already")
    print(added)


@llm_app.command("stats")
def llm_stats():
    """What the store holds: answers, failures, requests left in flight by a killed build, tokens and cost."""
    db = _responses().db
    for status, n, i, o, c in db.execute("SELECT status, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost) "
                                         "FROM responses GROUP BY status ORDER BY status"):
        print(f"{status}: {n:,} requests, {i or 0:,} input + {o or 0:,} output tokens, ${c or 0:.4f}")


@app.command("label")
def label_cmd(
    ref: Annotated[str, typer.Argument(help="NAME[@VERSION]: a built preference dataset (its pairs, the judge's dropped ones included).")],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: a free one).")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but 127.0.0.1/localhost serves invited annotators only (--annotators).")] = "127.0.0.1",
    annotator: Annotated[str, typer.Option("--annotator", help="Your name, filled in on the page (on loopback without --annotators).")] = "",
    annotators: Annotated[Optional[str], typer.Option("--annotators", help="Invite these annotators, comma-separated: one secret link each is printed (once; the label store keeps only a digest, so a restart keeps the links valid). Only they can open the page then.")] = None,
    invite: Annotated[Optional[str], typer.Option("--invite", help="Make a new link for this annotator (an earlier one stops working), print it and exit; a running server takes it at once.")] = None,
    revoke: Annotated[Optional[str], typer.Option("--revoke", help="End this annotator's link at once (a running server refuses it from the next request) and exit.")] = None,
    public_url: Annotated[Optional[str], typer.Option("--public-url", help="The address annotators open (e.g. https://label.example.org behind a reverse proxy), for the printed links.")] = None,
    sources: Annotated[Optional[str], typer.Option("--sources", help="Only the pairs of these sources, comma-separated (e.g. sft,hate).")] = None,
    guideline: Annotated[Optional[Path], typer.Option("--guideline", help="A UTF-8 text file shown beside the pairs instead of the built-in guideline.")] = None,
):
    """Serve a local page for labelling preference pairs by hand; labels go to the data folder's label store as
    they are made, and the next `datafactory build` of a recipe with a `pair` step applies them. On 127.0.0.1 one
    person may label without a link; as a team (--annotators, or any --host beyond loopback) each annotator opens
    their own secret link."""
    from datafactory.label_server import LabelServer, LabelSession, invite_link, is_loopback, read_guideline

    store, labels = _label_store(create=True)
    names = [x.strip() for x in (annotators or "").split(",") if x.strip()]
    for who in (*names, invite or "", revoke or ""):
        if who and (len(who) > 64 or any(c in who for c in ",\n\r\t")):
            raise DataFactoryError(f"annotator name {who!r}: at most 64 characters, no commas or line breaks")
    if revoke is not None or invite is not None:
        if revoke is not None:
            if not labels.revoke(revoke.strip()):
                raise DataFactoryError(f"{revoke.strip()} has no link to revoke (invited: "
                                       f"{', '.join(labels.invited()) or 'nobody'})")
            _log(f"{revoke.strip()}'s link no longer works")
        if invite is not None:
            url = public_url or _label_address(host, port)
            print(f"{invite.strip()}: {invite_link(url, labels.invite(invite.strip()))}", flush=True)
        labels.close()
        return
    session = LabelSession(store, ref, labels, annotator=annotator.strip(),
                           sources=[x.strip() for x in sources.split(",") if x.strip()] if sources else None,
                           guideline=read_guideline(guideline))
    if not session.applied:
        err.print(f"warning: the recipe {session.name} has no `pair` step taking human labels: the labels are stored "
                  "(and exported with `datafactory labels export`) but its rebuild will not apply them",
                  markup=False, highlight=False)
    invited = bool(names) or not is_loopback(host)
    if invited and not names and not labels.invited():
        raise DataFactoryError(f"listening on {host} serves invited annotators only, and nobody is invited: add "
                               "--annotators kim,lee (one secret link each is printed), or label alone on 127.0.0.1")
    server = LabelServer(session, host, port, invited=invited)
    _log(f"labelling {session.name}@{session.version}: {len(session.pairs):,} pairs from {', '.join(session.sources)}; "
         f"labels are saved in {store.labels} as they are made. Ctrl-C stops the server.")
    if invited:
        url = public_url or _label_address(host, server.server_address[1])
        earlier = labels.invited()
        for who in names:
            if who in earlier:
                _log(f"{who}: invited earlier; that link still works (`--invite {who}` makes a new one and ends it)")
            else:
                print(f"{who}: {invite_link(url, labels.invite(who))}", flush=True)
        others = [w for w in earlier if w not in names]
        if others:
            _log(f"also invited earlier: {', '.join(others)} (`--revoke NAME` ends a link)")
        if not is_loopback(host) and not (public_url or "").startswith("https://"):
            err.print("warning: the links and labels travel unencrypted over http; put the server behind HTTPS (a "
                      "reverse proxy, then --public-url https://...) or reach it through an SSH tunnel",
                      markup=False, highlight=False)
    else:
        # the person who started it gets their name in the link; another browser asks for its own
        from urllib.parse import quote

        print(server.url + (f"?annotator={quote(annotator.strip())}" if annotator.strip() else ""), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        n = sum(1 for x in labels.live(session.name) if x["decision"] != "skip")
        labels.close()
        _log(f"stopped; {n:,} labels on {session.name}. `datafactory build {session.name}` applies them.")


def _label_address(host: str, port: int) -> str:
    """Where annotators reach a label server listening on ``host``: the machine's name for a wildcard address."""
    import socket

    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/"


labels_app = typer.Typer(no_args_is_help=True, help="Human preference labels (made with `datafactory label`): stats, export, import.")
app.add_typer(labels_app, name="labels")


def _label_store(create: bool = False):
    from datafactory.labels import LabelStore

    store = _store()
    if not create and not store.labels.exists():
        raise DataFactoryError(f"no labels yet in {store.root} (no {store.labels}); make some with "
                               "`datafactory label NAME` or `datafactory labels import FILE`")
    return store, LabelStore(store.labels)


@labels_app.command("stats")
def labels_stats(ref: Annotated[Optional[str], typer.Argument(help="NAME[@VERSION]: only the pairs of this version, with the judge agreement and the labels its pairs lost.")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False):
    """Labels per source and annotator, agreement between annotators (Cohen's kappa), with the LLM judge, time per label."""
    from datafactory.labels import pairs_of_version, stats, version_stats

    store, labels = _label_store()
    live = labels.live()
    if ref:
        name, version = store.resolve(ref)
        s = version_stats(live, pairs_of_version(store.version_dir(name, version), store.manifest(name, version)),
                          name, version)
    else:
        s = stats(live)
    if as_json:
        print(json.dumps(s, ensure_ascii=False, indent=2))
        return
    print(f"{s.get('dataset', 'all datasets')}: {s['labels']:,} labels by {len(s['annotators'])} annotators"
          + (f" on {s['pairs']:,} pairs" if "pairs" in s else "") + "; the winner shown: "
          + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(s["decisions"].items()))
          + ("; " + ", ".join(f"{k} {v:,}" for k, v in sorted(s["strength"].items())) if s.get("strength") else ""))
    for source, by in s["per_source"].items():
        print(f"  {source}: " + ", ".join(f"{a} {n:,}" for a, n in by.items()))
    for k in s["kappa"]:
        kappa = ("n/a (one pair in common)" if k["pairs"] < 2 else "n/a (one category only)") if k["kappa"] is None \
            else f"{k['kappa']:.3f}"
        print(f"  {' / '.join(k['annotators'])}: {k['pairs']:,} pairs in common, agreement {k['agreement']:.0%}, "
              f"Cohen's kappa {kappa}")
    for source, j in (s.get("judge_agreement") or {}).items():
        print(f"  {source}: people agree with the LLM judge on {j['agree']:,} of {j['compared']:,} pairs ({j['rate']:.0%})")
    for a, t in s["seconds"].items():
        print(f"  {a}: {t['labels']:,} labels, median {t['median']} s, mean {t['mean']} s per label"
              + (f", {s['skipped'][a]:,} skipped" if s["skipped"].get(a) else ""))
    if s.get("unmatched", {}).get("labels"):
        u = s["unmatched"]
        print(f"  {u['labels']:,} labels made on earlier versions match no pair of this one (the prompt left the "
              "sample or an answer changed): " + ", ".join(f"{v} {n}" for v, n in u["by_version"].items()))


@labels_app.command("export")
def labels_export(output: Annotated[Path, typer.Argument(help="A JSONL file to write (new).")],
                  dataset: Annotated[Optional[str], typer.Option("--dataset", help="Only the labels made on this dataset NAME.")] = None):
    """Write the labels (the latest of each annotator, undone ones left out) as JSONL: prompt, response_a,
    response_b, winner, annotator, reason, ... (what `labels import` and the `pair` step's `labels:` file read)."""
    from datafactory.labels import export_rows

    _, labels = _label_store()
    n = _write_new_jsonl(output, lambda: export_rows(labels.live(dataset)))
    _log(f"exported {n:,} labels to {output}")
    print(output)


@labels_app.command("import")
def labels_import(file: Annotated[Path, typer.Argument(help="A JSONL file: prompt, response_a, response_b, winner (a, b, tie, both_bad) per line.")],
                  annotator: Annotated[Optional[str], typer.Option("--annotator", help="For lines without an annotator (default: file:<name>).")] = None,
                  dataset: Annotated[Optional[str], typer.Option("--dataset", help="For lines without a dataset.")] = None):
    """Add labels from a JSONL file (a spreadsheet's export, another machine's `labels export`); importing the same
    file twice adds nothing."""
    from datafactory.labels import import_labels, read_label_file

    if not file.is_file():
        raise DataFactoryError(f"{file}: no such file")
    rows = read_label_file(file, annotator, dataset)
    _, labels = _label_store(create=True)
    added, kept = import_labels(labels, rows)
    _log(f"imported {added:,} labels; {kept:,} were here already")
    print(added)


@app.command("source")
def source_cmd(
    kind: Annotated[str, typer.Argument(help="Source kind: nikl_dialogue, aihub_ethics, rlhf_reward, evol_instruct, kobest, files.")],
    path: Annotated[str, typer.Argument(help="Your download: a zip, a folder or a glob.")],
    head: Annotated[int, typer.Option("--head", "-n", min=0, help="Records to print.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary and records as JSON lines.")] = False,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="KEY=VALUE source option (VALUE is YAML), e.g. -o topics=null.")] = None,
    encoding: Annotated[str, typer.Option(help="utf-8, cp949, euc-kr, utf-16 or auto.")] = "utf-8",
    on_error: Annotated[str, typer.Option("--on-error", help="quarantine (count and go on) or fail (stop at the first bad record).")] = "quarantine",
):
    """Parse a download without building: counts, skipped/quarantined records by reason, and the first records."""
    from datafactory.inspect import inspect_source

    report = inspect_source(kind, path, option or [], encoding=encoding, on_error=on_error, head=head)
    if as_json:
        print(json.dumps(report["summary"], ensure_ascii=False))
        for row in report["head"]:
            print(json.dumps(row, ensure_ascii=False, default=str))
        return
    s = report["summary"]
    out.print(f"{s['kind']} {s['path']}: {s['records']:,} records from {s['files']:,} files", markup=False)
    for what in ("skipped", "quarantined", "cleaned"):
        for reason, n in s[what].items():
            out.print(f"  {what} {reason}: {n:,}", markup=False)
    for w in s["warnings"]:
        out.print(f"  warning: {w}", markup=False)
    for q in report["quarantine"][:5]:
        out.print(f"  ! {q['file']} record {q['record']}: {q['detail']}", markup=False)
    for row in report["head"]:
        print(json.dumps(row, ensure_ascii=False, default=str))


def hoist_global_options(args: list[str]) -> list[str]:
    """Move the global options to the front, so `datafactory build sft_v1 --data DIR` works as typed."""
    front, rest, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        if a in GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            front += args[i:i + 2]
            i += 2
            continue
        if a.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS or a in GLOBAL_FLAGS:
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """Usage mistakes are typer's (usage line, exit 2); our own errors print one line and exit 1."""
    import gc

    # a 100k-file corpus makes a few hundred thousand small objects while planning (the listing, the digests):
    # the default collector would walk them over and over; the data itself lives in Arrow, outside its reach
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        app(args=hoist_global_options(sys.argv[1:] if argv is None else argv), prog_name="datafactory")
    except DataFactoryError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(1)
    except Exception as e:  # a full disk or a folder we may not write: one line, not a traceback
        disk = _disk_error(e)
        if disk is None:
            raise
        where = f" ({disk.filename})" if disk.filename else ""
        err.print(f"error: {disk.strerror}{where}; free some space or point --data at a folder you can write "
                  "(what was built and paid for before this is kept: the same command resumes)", markup=False,
                  highlight=False)
        sys.exit(1)


def _disk_error(e: BaseException) -> OSError | None:
    """The full-disk, over-quota, read-only or permission error behind ``e`` (a writer thread may have wrapped it)."""
    import errno

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            return e
        e = e.__cause__ or e.__context__
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's time limit, a container stopping) taken as a Ctrl-C: the build stops
    its worker processes, removes what it had half written and says what it keeps. By default SIGTERM killed the
    program on the spot and left its forkserver and workers behind, idle, holding memory (and an output pipe, on
    which a wrapper then waited)."""


def _terminated(signum, frame):
    raise Terminated()


def run() -> None:
    """The ``datafactory`` program (its console script and ``python -m datafactory``): ``main``, then an exit that
    does not tear the interpreter down object by object and module by module (0.2 s after a build that loaded
    polars and pyarrow: a tenth of a 10k-file build). What matters of the teardown is done first: the
    exit handlers run (logging, multiprocessing) and the output is flushed. Where another thread still runs, the
    usual exit waits for it (and it is the usual exit on a Python without ``atexit._run_exitfuncs``)."""
    import atexit
    import signal
    import threading

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # not where whoever started us chose otherwise
        signal.signal(signal.SIGTERM, _terminated)
    utf8_output()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if threading.active_count() > 1 or run_handlers is None:
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # as sys.exit does with a message
        print(code, file=sys.stderr)
        code = 1
    run_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
