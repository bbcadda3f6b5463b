"""The build engine: recipe -> plan (version id, what is cached) -> versioned dataset in the store.

Version ids. Each source gets a key from its name, kind, code, options and input fingerprints; each step a key
chained from the previous one and its own name, parameters, code and ``identity()`` (a template's or a prompt's
text), and for an LLM step the model behind each of its roles (from the LLM profile). The version id hashes the last key, the canonical recipe (paths left out) and the
upstream versions. Same inputs, same id: ``build`` is then a no-op. A changed step changes its key and the keys
after it, so only that step and the later ones run again (step-level cache under ``data/.cache``).

Recipes form a graph through ``kind: dataset`` sources: upstream recipes are planned first, built when their
version is missing, and a cycle is an error naming the chain. An LLM step gets ``ctx.llm`` (datafactory/llm/client.py);
``estimate`` runs the steps with a dry LLM that asks nothing. Publishing a version is datafactory/publish.py.
"""
from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from datafactory import conversations
from datafactory.errors import DataFactoryError, RecipeError, SourceError, StoreError
from datafactory.code_identity import CodeIdentity, code_identity
from datafactory.fingerprints import FingerprintCache
from datafactory.hashing import VERSION_LEN, digest, first_repeated
from datafactory.recipe import FORMATS, Recipe, StepSpec, load_recipe, recipe_path
from datafactory.sources import SOURCES
from datafactory.sources.base import Source, dtype_kind, first_kinds_clash, input_digest
from datafactory.sources.inputs import Listing
from datafactory.sources.dataset import DatasetSource
from datafactory.steps import STEPS
from datafactory.steps.base import BOOKKEEPING, LINEAGE, Step, StepContext, StepError
from datafactory.steps.split import SplitParams
from datafactory.publish import FORMAT_VERSION, Publisher
from datafactory.store import (Background, Parts, Store, entry_files, read_entry, remove, write_atomic,
                              write_parquet_atomic)



@contextlib.contextmanager
def _no_progress(description: str, total: int | None = None):
    yield lambda n=1, **kw: None


def apply_step(step: Step, sources: list[str] | None, frame: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
    """One step over ``frame``, or over the rows of ``sources`` only (the others pass through, after them)."""
    if sources is not None:
        inside = pl.col("source").is_in(sources)
        subset, rest = frame.filter(inside), frame.filter(~inside)
    else:
        subset, rest = frame, None
    out = step.apply(subset, ctx)
    missing = [c for c in LINEAGE if c not in out.columns]
    if missing:
        raise StepError(f"the step removed the lineage column '{missing[0]}'")
    if rest is None:
        return out
    if clash := first_kinds_clash({"out": out, "rest": rest}):
        c = clash[0]
        raise StepError(f"the step makes column '{c}' hold {dtype_kind(out.schema[c])} in the rows of its sources, "
                        f"where the other rows hold {dtype_kind(rest.schema[c])}; one column cannot hold both (name "
                        "the step's column otherwise)")
    return pl.concat([out, rest], how="diagonal_relaxed")


def describe_problems(problems: dict[str, str]) -> str:
    """Roles with the same problem named together: ``roles teacher, judge: no API key in $OPENAI_API_KEY ...``."""
    by: dict[str, list[str]] = {}
    for role, why in problems.items():
        by.setdefault(why, []).append(role)
    return "; ".join(f"role{'s' if len(r) > 1 else ''} {', '.join(r)}: {why}" for why, r in by.items())


def concat_sources(recipe: Recipe, named: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The sources' rows in one table. A column that holds lists or objects in one source and another kind in the
    next would be made text ("{1}") or fail to cast inside polars: an error naming both sources instead."""
    if clash := first_kinds_clash(named):
        c, a, b = clash
        raise RecipeError(str(recipe.file), "sources", f"column '{c}' holds {dtype_kind(named[a].schema[c])} in source "
                          f"'{a}' and {dtype_kind(named[b].schema[c])} in source '{b}', which one column cannot hold",
                          "map a files source's fields to other names (`options.fields`)")
    return pl.concat(list(named.values()), how="diagonal_relaxed")


def needed_columns(steps: list["StepPlan"]) -> set[str] | None:
    """The columns the steps read or output, from the last step back (``Step.needs``); ``None`` when a step may
    read any column, or no ``select`` decides the output."""
    after: set[str] | None = None
    for sp in reversed(steps):
        if after is None:
            if sp.step.name != "select":
                continue
            after = set()
        after = sp.step.needs(set(after))
        if after is None:
            return None
    return after


@dataclass
class StepPlan:
    spec: StepSpec
    step: Step
    key: str
    code: CodeIdentity  # the modules and library versions behind the step's key (in the manifest: `diff` names them)
    cached: bool
    salt: str  # the step's purpose and position among steps of its kind ("mix#0"): see StepContext.rank
    identity: dict = field(default_factory=dict)  # what besides parameters and code made its key (a prompt, roles)


@dataclass
class SourcePlan:
    source: Source
    key: str
    fingerprint: dict
    cached: bool


@dataclass
class Plan:
    recipe: Recipe
    version: str
    sources: dict[str, SourcePlan]
    steps: list[StepPlan]
    upstream: dict[str, "Plan | None"]  # source name -> plan (None for a pinned version)
    upstream_versions: dict[str, str]
    built: bool
    pending: list[str] = field(default_factory=list)  # sources with unhashed files: version unknown until read


@dataclass
class BuildResult:
    name: str
    version: str
    built: bool  # False: the version existed and nothing ran
    manifest: dict = field(default_factory=dict)
    upstream: list["BuildResult"] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Factory:
    """Plans and builds recipes from ``recipes_dir`` into the store at ``data_dir``."""

    def __init__(self, data_dir: Path, recipes_dir: Path, *, overrides: dict[str, str] | None = None,
                 log: Callable[[str], None] | None = None, progress=None, llm: str | None = None,
                 max_cost: float | None = None):
        """``log`` receives one line per event; ``progress(description, total)`` returns a context manager
        yielding ``advance(n=1, total=None, info=None)``, called as units of work (files, rows, LLM requests) are
        done (the CLI shows a bar). ``llm`` names the LLM profile (``profiles/NAME.yaml`` or a path; default
        ``$DATAFACTORY_LLM`` or ``default``); ``max_cost`` caps what this build may pay the LLM endpoints (USD)."""
        self.store = Store(Path(data_dir))
        self.recipes_dir = Path(recipes_dir)
        self.overrides = overrides or {}
        self.log = log or (lambda msg: None)
        self.progress = progress or _no_progress
        self.fingerprints = FingerprintCache(self.store.cache / "fingerprints.msgpack")
        self._plans: dict[str, Plan] = {}
        self.running: Plan | None = None  # the plan being built, for `interrupted()` after a Ctrl-C
        self.reading: str | None = None  # the new or changed source being read before its plan, likewise
        self.llm_name, self.max_cost = llm, max_cost
        self.exact_tokens = False  # an estimate counts every prompt's tokens (else a sample of a large plan's)
        self._profile = self._responses = self._client = None
        self._writes: list = []  # cache writes in flight (threads), see _save
        self._labels: list[dict] | None = None  # the label store's labels, see human_labels
        self._listed: dict | None = None  # during a build that parsed pending sources: their listings, reused
        self._dry_frames: dict[str, pl.DataFrame] = {}  # a dry run's last frame per recipe (estimate)
        self._building = False  # inside a build (its upstream builds are not checked again)
        self._before_projection: list[str] = []  # the recipe's columns before the engine dropped unread ones

    # -- planning ------------------------------------------------------------------------------------
    def recipe(self, name: str, top: bool = True) -> Recipe:
        return load_recipe(recipe_path(self.recipes_dir, name), self.overrides if top else None)

    def plan(self, name: str, _stack: tuple[str, ...] = (), defer: bool = False) -> Plan:
        """The build plan of ``name``: version id, what is cached. With ``defer`` (``build`` uses it), a source
        whose files are new or changed is not hashed here: the plan comes back ``pending`` and the build parses
        the source first, hashing the bytes its workers read anyway, then plans again."""
        if name in _stack:
            chain = " -> ".join((*_stack[_stack.index(name):], name))
            raise RecipeError(str(recipe_path(self.recipes_dir, name)), "sources",
                              f"recipes depend on each other in a cycle: {chain}", "break the cycle")
        if name in self._plans:
            return self._plans[name]
        pending: list[str] = []
        recipe = self.recipe(name, top=not _stack)
        base_dir = self.project_root

        upstream: dict[str, Plan | None] = {}
        upstream_versions: dict[str, str] = {}
        sources: dict[str, SourcePlan] = {}
        for sname, spec in recipe.sources.items():
            cls = SOURCES[spec.kind]
            opts = recipe.source_options[sname]
            src = cls(sname, spec.path, opts, encoding=spec.encoding, on_error=spec.on_error, base_dir=base_dir)
            listed_key = (spec.kind, spec.path, str(base_dir))
            if self._listed is not None and listed_key in self._listed:  # the files just parsed, not a new listing
                src._inputs = self._listed[listed_key]
            if isinstance(src, DatasetSource):
                if opts.version:
                    try:
                        _, up_version = self.store.resolve(f"{opts.name}@{opts.version}")
                    except StoreError as e:  # named by the recipe key that pins it
                        raise RecipeError(str(recipe.file), f"sources.{sname}.options", str(e)) from None
                    upstream[sname] = None
                else:
                    up = self.plan(opts.name, (*_stack, name))
                    upstream[sname], up_version = up, up.version
                upstream_versions[sname] = up_version
                src.version_dir = self.store.version_dir(opts.name, up_version)
            try:
                fp = src.fingerprint(self.fingerprints, defer=defer)
            except DataFactoryError as e:
                raise type(e)(f"{recipe.file}: sources.{sname}: {e}") from None
            if fp is None:
                pending.append(sname)
            key = digest("source", sname, spec.kind, code_identity(cls).digest, opts.model_dump(mode="json"), spec.encoding,
                         spec.on_error, fp, src.identity())
            cached = self.store.cache_path("sources", key, ".parquet").exists()
            sources[sname] = SourcePlan(src, key, fp, cached)

        specs = list(recipe.steps)
        if recipe.splits:
            if any(s.name == "split" for s in specs):
                raise RecipeError(str(recipe.file), "splits", "the recipe has both `splits:` and a `split` step",
                                  "keep one of them")
            specs.append(StepSpec("split", SplitParams(splits=recipe.splits, stratify_by=recipe.stratify_by), None, "splits"))
        key = digest("sources", [(n, p.key) for n, p in sources.items()])
        steps: list[StepPlan] = []
        seen: dict[str, int] = {}
        for spec in specs:
            cls = STEPS[spec.name]
            try:
                step = cls(spec.params, base_dir)
                if step.uses_labels():  # human labels are part of what the step makes
                    step.human_rows, step.dataset = self.human_labels(), recipe.name
                if step.uses_datasets():  # built datasets it reads by name (decontaminate's evaluation sets)
                    step.store = self.store
                identity = step.identity()
                roles = step.roles()
                if roles:  # the model behind each role (never its key or URL) is part of what the step makes
                    identity = {**identity, "roles": {r: self.profile.identity(r, f"{recipe.file}: {spec.key}")
                                                      for r in roles}}
            except DataFactoryError as e:
                raise RecipeError(str(recipe.file), spec.key, str(e)) from None
            code = code_identity(cls)
            salt = f"{spec.name}#{seen.get(spec.name, 0)}"
            seen[spec.name] = seen.get(spec.name, 0) + 1
            key = digest("step", key, spec.canonical(), code.digest, identity, recipe.seed, salt)
            cached = self.store.cache_path("steps", key, ".parquet").exists()
            steps.append(StepPlan(spec, step, key, code, cached, salt, identity))

        self.fingerprints.save()  # the input files' digests, and a local model's
        version = digest(FORMAT_VERSION, key, recipe.canonical(with_paths=False), upstream_versions)[:VERSION_LEN]
        plan = Plan(recipe, version, sources, steps, upstream, upstream_versions,
                    not pending and self.store.has(name, version) and not self._damaged(name, version), pending)
        if not pending:
            self._plans[name] = plan
        return plan

    def _damaged(self, name: str, version: str) -> bool:
        """A built version whose split files were deleted or cut short is built again (the same id: its caches make
        the same bytes), said in a line."""
        why = self.store.damage(name, version)
        if why:
            self.log(f"{name}@{version} is damaged ({why}): building it again")
        return why is not None

    def human_labels(self) -> list[dict]:
        """The label store's live labels (read once per Factory; none when nobody has labelled yet)."""
        if self._labels is None:
            from datafactory.labels import LabelStore

            store = LabelStore(self.store.labels, create=False)
            try:
                self._labels = store.live()
            finally:
                store.close()
        return self._labels

    @property
    def project_root(self) -> Path:
        """The folder above ``recipes/``: relative source paths start here."""
        return self.recipes_dir.resolve().parent

    # -- the LLM layer, loaded only when a recipe has an LLM step ------------------------------------------
    @property
    def profile(self):
        from datafactory.llm.profiles import load_profile

        if self._profile is None:
            self._profile = load_profile(self.llm_name, self.project_root / "profiles")
            self._profile.digest_of = self.fingerprints.digest  # a local model's files: hashed once, then by mtime
        return self._profile

    @property
    def responses(self):
        """The response store of this data folder: every LLM answer paid for, shared by all recipes."""
        from datafactory.llm.store import ResponseStore

        if self._responses is None:
            self._responses = ResponseStore(self.store.responses)
        return self._responses

    def llm_client(self, dry_run: bool = False):
        from datafactory.llm.client import Budget, LLMClient

        if dry_run:
            return LLMClient(self.profile, self.responses, dry_run=True, log=self.log, exact_tokens=self.exact_tokens)
        if self._client is None:
            self._client = LLMClient(self.profile, self.responses, budget=Budget(self.max_cost), log=self.log)
        return self._client

    def llm_problems(self, name: str) -> dict[str, str]:
        """What would stop an LLM call of building ``name``, upstream included, before anything runs: per role of
        its recipes' LLM steps (read from the recipes, without planning: no input is listed or hashed here), a
        missing key, an endpoint nothing answers at or a missing model folder."""
        roles: dict[str, None] = {}
        seen: set[str] = set()

        def walk(recipe_name: str, top: bool) -> None:
            if recipe_name in seen:
                return
            seen.add(recipe_name)
            recipe = self.recipe(recipe_name, top=top)
            for sname, spec in recipe.sources.items():
                opts = recipe.source_options[sname]
                if spec.kind == "dataset" and not opts.version:
                    walk(opts.name, False)
            for spec in recipe.steps:
                try:
                    roles.update(dict.fromkeys(STEPS[spec.name](spec.params, self.project_root).roles()))
                except DataFactoryError:
                    continue  # the plan names a step that cannot be made, with its recipe key

        walk(name, True)
        return {r: why for r in roles if (why := self.profile.problem(r))}

    def preflight(self, name: str) -> None:
        """Before the first step of a build: a role that cannot be called stops it here, unless every request of the
        steps that use it is in the response store already (the estimate then finds nothing to call)."""
        problems = self.llm_problems(name)
        if not problems:
            return
        calls = sum(u.get("estimated", {}).get("calls", 0) for u in self.estimate(name).values())
        if calls:
            raise DataFactoryError(f"{calls:,} LLM calls to make, and " + describe_problems(problems) + "; nothing was run")

    # -- building ------------------------------------------------------------------------------------
    def build(self, name: str) -> BuildResult:
        if not self._building:  # the top of the graph: every role is checked before anything runs
            self._building = True
            try:
                with self.store.running():  # gc leaves the cache alone while this runs
                    self.preflight(name)
                    return self.build(name)
            finally:
                self._building = False
        plan = self.plan(name, defer=True)
        ups = [self.build(p.recipe.name) for p in plan.upstream.values() if p is not None]
        pre: dict[str, tuple] = {}
        try:
            if plan.pending:  # parse the new or changed sources first: their digests come with the bytes read
                self.log(f"reading {', '.join(plan.pending)} of {name} (new or changed files)")
                keep = needed_columns(plan.steps)
                for sname in plan.pending:
                    self.reading = f"{sname} of {name}"
                    pre[sname] = self._parse_source(plan, sname, keep, hash_reads=True)
                self.reading = None
                self.fingerprints.save()
                self._listed = {(plan.recipe.sources[n].kind, plan.recipe.sources[n].path, str(self.project_root)):
                                plan.sources[n].source.inputs() for n in plan.pending}
                plan = self.plan(name)
            with self.store.lock(name, on_wait=lambda: self.log(f"waiting for another build of {name} to finish")):
                if self.store.has(name, plan.version) and not self.store.damage(name, plan.version):
                    self.store.set_latest(name, plan.version)
                    return BuildResult(name, plan.version, False, self.store.manifest(name, plan.version), ups)
                self.running = plan
                try:
                    manifest = self._run(plan, pre=pre)
                finally:
                    self._saved()
                self.running = None
        finally:
            self._listed = None
            for _, _, tmp in pre.values():  # what was parsed and not used (the version existed, or an error)
                if tmp is not None:
                    remove(tmp)
        self._plans.pop(name, None)  # caches changed: a later plan() must look again
        return BuildResult(name, plan.version, True, manifest, ups)

    def interrupted(self) -> str:
        """What a build stopped by Ctrl-C leaves behind, in words: the cache entries it can resume from."""
        plan = self.running
        if plan is None and self.reading:
            return f"it was reading source {self.reading} (a source is kept once read whole: the next build reads it again)"
        if plan is None:
            return "nothing was being built"
        steps = sum(self.store.cache_path("steps", sp.key, ".parquet").exists() for sp in plan.steps)
        sources = sum(self.store.cache_path("sources", sp.key, ".parquet").exists() for sp in plan.sources.values())
        return (f"{plan.recipe.name}@{plan.version}: {sources} of {len(plan.sources)} sources and {steps} of "
                f"{len(plan.steps)} steps are kept in the cache (LLM answers are kept as they come; quick steps run "
                "again from what is kept)")

    def _run(self, plan: Plan, dry_run: bool = False, pre: dict | None = None) -> dict | list[dict]:
        """Run the steps not cached, from the last cached one. A dry run (cost estimate) asks no LLM, saves
        no step and publishes nothing: it returns the step records, with each LLM step's estimate."""
        recipe = plan.recipe
        self._before_projection = []
        if not dry_run:
            self.log(f"building {recipe.name}@{plan.version}")
        start = len(plan.steps) - 1
        while start >= 0 and not plan.steps[start].cached:
            start -= 1
        records: list[dict] = []
        for sp in plan.steps[:start + 1]:
            records.append({**self._load_stats("steps", sp.key), "cached": True})
        keep = needed_columns(plan.steps[start + 1:])
        if dry_run:  # the token counters load while the sources are read
            self._preload_encodings(plan.steps[start + 1:])
        if start >= 0:
            frame = pl.read_parquet(self.store.cache_path("steps", plan.steps[start].key, ".parquet"))
            source_stats = {n: self._load_stats("sources", sp.key) for n, sp in plan.sources.items()}
        else:
            frame, source_stats = self._read_sources(plan, keep, pre or {})

        # an error naming a missing column lists these too (a cached source's own columns were added as it was read)
        self._before_projection = list(dict.fromkeys([*self._before_projection, *frame.columns]))
        if keep is not None:  # projection pushdown: columns no later step reads, and the output drops, go now
            frame = frame.select([c for c in frame.columns if c in keep or c in BOOKKEEPING])
        template = None
        for rec in records:
            template = rec.get("info", {}).get("template", template)
            for w in rec.get("warnings", []):
                if not dry_run:
                    self.log(f"  warning: {w} (cached)")
        for sp in plan.steps[start + 1:]:
            frame, rec = self._run_step(recipe, sp, frame, plan.steps, dry_run)
            template = rec["info"].get("template", template)
            records.append(rec)
        if dry_run:
            self._dry_frames[recipe.name] = frame  # a downstream recipe's estimate reads it (see estimate)
            return records
        frame = self._finish(recipe, frame)
        return Publisher(self.store, self.project_root, self.log).publish(plan, frame, records, source_stats, template)

    def _preload_encodings(self, steps: list) -> None:
        from datafactory.llm.cost import encoding_name, preload

        roles = {role for sp in steps for role in sp.step.roles()}
        if roles:
            specs = [self.profile.roles[r] for r in sorted(roles) if r in self.profile.roles]
            preload(sorted({encoding_name(s.model or "", s.tokenizer) for s in specs}))

    def estimate(self, name: str) -> dict[str, dict]:
        """What building ``name`` would ask the LLM endpoints, without asking: per LLM step (its key), the
        requests, those already in the store, and the estimated calls, tokens and cost of the rest. Upstream
        recipes that are not built are estimated first (and built when they have no LLM step: that costs nothing).

        An upstream with LLM steps that is not built is run dry too, its answers stand-ins of the estimated length
        (a judge's scores 4 or 5), and the recipe's steps run on those rows: its estimate is then a bound (marked
        ``bound``), as many rows as the upstream's steps let through with answers that pass every filter."""
        plan = self.plan(name)
        out: dict[str, dict] = {}
        standing_in: list[str] = []
        for sname, up in plan.upstream.items():
            if up is not None and not up.built:
                if any(sp.step.roles() for sp in up.steps):
                    out.update({f"{up.recipe.name}: {k}": v for k, v in self.estimate(up.recipe.name).items()})
                    plan.sources[sname].source.stand_in = self._dry_frames.get(up.recipe.name)
                    standing_in.append(up.recipe.name)
                    continue
                self.build(up.recipe.name)
        if plan.upstream and not standing_in:
            self._plans.pop(name, None)
            plan = self.plan(name)
        if plan.built:
            return out
        try:
            for rec in self._run(plan, dry_run=True):
                if "llm" in rec:
                    out[rec["key"]] = ({**rec["llm"], "bound": f"from {', '.join(standing_in)}'s stand-in answers"}
                                       if standing_in else rec["llm"])
        finally:
            for sp in plan.sources.values():
                sp.source.stand_in = None
        return out

    def _check_not_empty(self, plan: Plan, name: str, stats: dict) -> None:
        """A source that yields no rows fails the build, saying why, unless the recipe allows it."""
        spec = plan.recipe.sources[name]
        if stats["rows"] or spec.allow_empty:
            return
        src = plan.sources[name].source
        hints = src.skip_hints
        why = [f"{n:,} skipped by {reason}" + (f" ({hints[reason]})" if reason in hints else "")
               for reason, n in sorted((stats.get("skipped") or {}).items(), key=lambda kv: -kv[1])]
        why += [f"{n:,} quarantined as {reason}" for reason, n in (stats.get("quarantined") or {}).items()]
        raise SourceError(f"{plan.recipe.file}: sources.{name}: no rows from {stats.get('files', 0):,} files ({src.kind})"
                          + (": " + "; ".join(why) if why else "") + "; fix the options or the path, or set "
                          "`allow_empty: true` on the source if that is expected")

    def _read_sources(self, plan: Plan, keep: set[str] | None = None, pre: dict | None = None) -> tuple[pl.DataFrame, dict]:
        """Every source's rows: from the cache, parsed already (``pre``: a pending source ``build`` read while
        hashing it), or parsed now; parsed ones are cached. With ``keep`` (the columns the steps read, see
        ``needed_columns``) only those are loaded; a source of a kind with a fixed schema has its chunks written, every
        column, as parts of its cache entry (a folder) by the processes that parsed them, so the whole table with
        every column is never in memory (a kind without one is cached as one file)."""
        frames, stats = {}, {}
        for name, sp in plan.sources.items():
            path = self.store.cache_path("sources", sp.key, ".parquet")
            if getattr(sp.source, "stand_in", None) is not None:  # an estimate's stand-in rows: never cached
                read = sp.source.read()
                frames[name], stats[name] = read.frame, {"rows": read.frame.height, "files": 0, "stand_in": True}
                continue
            if sp.cached and name not in (pre or {}):
                if keep is not None:  # the columns it has, read from the entry's schema (not its data)
                    self._before_projection += [c for c in pl.read_parquet_schema(entry_files(path)[0])
                                                if c not in self._before_projection]
                frames[name] = read_entry(path, None if keep is None else keep | set(BOOKKEEPING))
                stats[name] = self._load_stats("sources", sp.key)
                self.log(f"  source {name}: {stats[name]['rows']:,} rows (cached)")
                for w in stats[name].get("warnings", []):
                    self.log(f"  warning: source {name}: {w} (cached)")
                self._check_not_empty(plan, name, stats[name])
                continue
            read, stats[name], tmp = (pre or {}).pop(name, None) or self._parse_source(plan, name, keep)
            if read.quarantine:
                qpath = self.store.cache_path("sources", sp.key, ".quarantine.jsonl")
                write_atomic(qpath, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in read.quarantine))
            if tmp is not None:  # written in parts: stats first, then the folder whose presence marks the entry complete
                self._save("sources", sp.key, None, stats[name])
                if path.exists():  # another build made the same entry meanwhile
                    remove(tmp)
                else:
                    tmp.replace(path)
            else:
                self._save("sources", sp.key, read.frame, stats[name])
            q = sum(read.quarantined.values())
            skips = ", ".join(f"{k} {v:,}" for k, v in read.skipped.items())
            self.log(f"  source {name}: {read.frame.height:,} rows from {read.files} files"
                     + (f", {q:,} quarantined" if q else "") + (f" (skipped: {skips})" if skips else ""))
            for w in read.warnings:
                self.log(f"  warning: source {name}: {w}")
            self._check_not_empty(plan, name, stats[name])
            frames[name] = read.frame
        return concat_sources(plan.recipe, frames), stats

    def _parse_source(self, plan: Plan, name: str, keep: set[str] | None, hash_reads: bool = False):
        """Parse one source: (SourceRead with the ``keep`` columns, its stats, the temporary cache entry its
        chunks were written to by the processes that parsed them, or None). With ``hash_reads`` the digests of the
        bytes read go to the fingerprint cache (a file the parser did not read is hashed here)."""
        src = plan.sources[name].source
        t0 = time.perf_counter()
        tmp = self.store.cache / "sources" / f".{name}.{uuid.uuid4().hex[:8]}.parquet.tmp"
        parts = Parts(tmp, None if keep is None else keep | set(BOOKKEEPING))
        src.hash_reads = hash_reads
        try:
            with self.progress(f"reading {name}", len(src.inputs())) as advance:
                read = src.read(on_file=advance, parts=parts)
        except BaseException as e:
            remove(tmp)
            if isinstance(e, DataFactoryError):
                raise type(e)(f"{plan.recipe.file}: sources.{name}: {e}") from None
            raise
        finally:
            src.hash_reads = False
        if hash_reads:
            files = src.inputs()
            if isinstance(files, Listing):  # its columns: no InputFile made for 100k files
                listed = zip(files.paths, files.sizes, files.mtimes)
            else:
                listed = ((str(f.path), f.size, f.mtime_ns) for f in files)
            for path, size, mtime in self.fingerprints.remember_read(listed, read.digests):
                # not read by the parser, or changed while it read (unreadable: the parse quarantined it)
                input_digest(self.fingerprints, path, size, mtime)
        stats = {"rows": read.frame.height, "files": read.files, "quarantined": read.quarantined,
                 "skipped": read.skipped, "cleaned": read.cleaned, "warnings": read.warnings,
                 "seconds": round(time.perf_counter() - t0, 3)}
        return read, stats, tmp if tmp.exists() else None

    def _run_step(self, recipe: Recipe, sp: StepPlan, frame: pl.DataFrame, plan_steps: list[StepPlan],
                  dry_run: bool = False) -> tuple[pl.DataFrame, dict]:
        spec = sp.spec
        ctx = StepContext(seed=recipe.seed, work_dir=self.store.work_dir(sp.key), salt=sp.salt)
        t0 = time.perf_counter()
        rows_in = frame.height
        asks_llm = bool(sp.step.roles())
        try:
            n = frame.height if spec.sources is None else int(frame["source"].is_in(spec.sources).sum())
            with (self.progress(spec.key, n) if not dry_run else _no_progress(spec.key)) as advance:
                ctx.progress = advance
                if asks_llm:  # errors from the LLM layer are named by the recipe key below
                    ctx.llm = self.llm_client(dry_run).for_step("", advance)
                out = apply_step(sp.step, spec.sources, frame, ctx)
        except (DataFactoryError, pl.exceptions.PolarsError) as e:
            if ctx.llm is not None and not dry_run:  # what was paid before the error is in the store; say so
                self._log_llm(spec.key, ctx.llm.usage)
            msg = str(e).splitlines()[0] if isinstance(e, pl.exceptions.PolarsError) else str(e)
            if msg.startswith("no column") and set(self._before_projection) - set(frame.columns):
                # the columns shown are what reached this step; those the sources gave are the ones to pick from
                msg += f"; the sources give {', '.join(c for c in self._before_projection if c not in LINEAGE)}"
            raise RecipeError(str(recipe.file), spec.key, msg) from None
        dropped = dict(ctx.dropped)
        unexplained = rows_in - out.height - sum(dropped.values())
        if unexplained > 0:
            dropped[spec.name] = dropped.get(spec.name, 0) + unexplained
        # what made the step's key besides its parameters and code: a digest of its texts (a prompt, a template),
        # and the model behind each role (never a key or a URL): `diff` names what changed
        made_by = {"digest": digest(sp.identity)[:VERSION_LEN], **({"roles": sp.identity["roles"]}
                                                                  if sp.identity.get("roles") else {})}
        rec = {"key": spec.key, "step": spec.name, "params": spec.params.model_dump(mode="json"),
               "sources": spec.sources, "code_version": sp.code.digest, "code": sp.code.to_json(), "identity": made_by,
               "cache_key": sp.key, "rows_in": rows_in,
               "rows_out": out.height, "dropped": dropped, "seconds": round(time.perf_counter() - t0, 3),
               "info": ctx.info, "warnings": ctx.warnings}
        if ctx.tables:
            rec["tables"] = {name: f"tables/{name}.parquet" for name in ctx.tables}
        if asks_llm:
            rec["llm"] = ctx.llm.usage.to_json()
        if dry_run:
            return out, rec
        if asks_llm:  # before the step's parquet, whose presence marks the cache entry complete
            write_atomic(self.store.cache_path("steps", sp.key, ".llm_keys"), "".join(k + "\n" for k in ctx.llm.keys))
        for name, table in ctx.tables.items():  # before the step's entry: cached steps publish them again
            write_parquet_atomic(table, self.store.cache_path("steps", sp.key, f".table.{name}.parquet"))
        # the frame is kept only where it is costly to make again (LLM answers, a step that says so) or is the
        # recipe's last step's (a step added at the end, or other splits, start from it); the others are quick to
        # redo from the source or the kept step before them
        last = [p for p in plan_steps if p.spec.key != "splits"][-1:]  # the recipe's last step, before the split
        keep = asks_llm or sp.step.cache or sp in last
        # written by a thread from here on, beside the split, the checks and the publishing: in 16k-row groups its
        # buffers are small (100k NIKL files: peak 918 -> 889-895 MiB, 0.35 s less than writing it at the end)
        self._save("steps", sp.key, out if keep else None, rec)
        if asks_llm:
            self._log_llm(spec.key, ctx.llm.usage)
        drops = ", ".join(f"{k} {v:,}" for k, v in dropped.items())
        self.log(f"  {spec.key}: {rows_in:,} -> {out.height:,} rows" + (f" (dropped: {drops})" if drops else ""))
        for w in ctx.warnings:
            self.log(f"  warning: {w}")
        return out, {**rec, "cached": False}

    def _log_llm(self, key: str, usage) -> None:
        u = usage
        failed = ", ".join(f"{k} {v:,}" for k, v in u.failed.items())
        self.log(f"  {key}: {u.requests:,} LLM requests: {u.cache_hits:,} from the store, {u.calls:,} calls, "
                 f"{u.input_tokens + u.output_tokens:,} tokens, ${u.cost:.4f}"
                 + (f", failed: {failed}" if failed else "")
                 + (f", {u.possibly_billed_twice} possibly billed twice (in flight when a run died)"
                    if u.possibly_billed_twice else ""))

    def _finish(self, recipe: Recipe, frame: pl.DataFrame) -> pl.DataFrame:
        fmt = recipe.output.format
        needed = FORMATS[fmt]
        where = str(recipe.file)
        if recipe.output.type == "conversational":
            frame = conversations.to_conversational(frame, fmt, where)
            needed = conversations.CONVERSATIONAL[fmt]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise RecipeError(where, "output.format", f"format '{fmt}' needs columns {', '.join(needed)}; "
                              f"'{missing[0]}' is missing (columns: {', '.join(frame.columns)})",
                              "add a template or rename step")
        if frame.height == 0:
            raise RecipeError(where, "steps", "the recipe produced no rows; see the row counts above")
        if recipe.output.type == "conversational":
            conversations.check(frame, needed, where)
        for c in needed if recipe.output.type == "standard" else ():
            if frame.schema[c] != pl.String:
                raise RecipeError(where, "output.format", f"column '{c}' is {frame.schema[c]}, not text"
                                  + (" (set `output: {type: conversational}` for messages)"
                                     if conversations.is_messages(frame.schema[c]) else ""))
            bad = frame.filter(pl.col(c).is_null() | pl.col(c).str.contains(r"^\s*$"))  # no stripped copy
            if bad.height:
                raise RecipeError(where, "output.format", f"{bad.height} rows have an empty or null '{c}' "
                                  f"(first: id '{bad['id'][0]}')", f"add `- filter: {{length: {{column: {c}, min: 1}}}}`")
        if (dup := first_repeated(frame["id"])) is not None:
            raise RecipeError(where, "steps", f"row id '{dup}' occurs twice")
        rest = [c for c in frame.columns if c not in (*LINEAGE, *needed)]
        return frame.select(*LINEAGE, *needed, *rest)

    # -- cache files ---------------------------------------------------------------------------------
    def _save(self, kind: str, key: str, frame: pl.DataFrame | None, stats: dict) -> None:
        """A cache entry: its stats (always: the manifest lists every step), then the frame unless ``None``.
        The parquet file's presence is what marks the entry resumable; lz4, not zstd: written once, read seldom,
        and kept only until `gc`. The frame is written by a thread while the build goes on (polars writes
        without the GIL); ``_saved()``, at the end of the build (whether it published or failed), waits for
        every write."""
        write_atomic(self.store.cache_path(kind, key, ".json"), json.dumps(stats, ensure_ascii=False))
        if frame is None:
            return
        path = self.store.cache_path(kind, key, ".parquet")

        def write():
            try:  # row groups of 16k rows: polars holds a row group's encoded pages at once (64k: +150 MiB at 100k files)
                write_parquet_atomic(frame, path, compression="lz4", row_group_size=16_384)
            except BaseException as e:
                raise RuntimeError(f"{path.name}: {e}") from e

        self._writes.append(Background([(write, ())]))

    def _saved(self) -> None:
        """Wait for the cache writes of this build; say which failed (the build itself is unaffected: a missing
        entry is only a cache miss)."""
        while self._writes:
            w = self._writes.pop()
            w.join(raise_errors=False)
            for e in w.errors:
                self.log(f"  warning: a cache entry could not be written ({e}); the next build redoes that work")

    def _load_stats(self, kind: str, key: str) -> dict:
        try:
            return json.loads(self.store.cache_path(kind, key, ".json").read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            raise StoreError(f"cache entry {kind}/{key} is incomplete; run `datafactory gc` and build again") from None
