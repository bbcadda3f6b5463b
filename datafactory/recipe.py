"""Recipes: ``recipes/<name>.yaml``, loaded safely and validated into one ``Recipe``.

Shape (every key is checked; an unknown one names its path and the closest known key)::

    name: sft_v1                      # must match the file name
    description: ...
    card: {pretty_name, language, license, task_categories, tags}
    sources:
      daily: {kind: nikl_dialogue, path: data/samples/nikl_dialogue, options: {...},
              encoding: utf-8, on_error: fail, license: ..., redistribute: false, allow_empty: false}
      prompts: {kind: dataset, options: {name: sft_v1}}     # another built dataset: recipes form a graph
    steps:                            # ordered; each item is {step_name: {params}} or a bare step name
      - normalize: {columns: [instruction, output]}
      - filter: {length: {column: output, min: 2}, sources: [daily]}   # `sources:` limits a step to some sources
      - dedup
    output: {format: sft}             # sft | preference | prompt | text (TRL dataset types); type: conversational
    splits: {train: 0.95, test: 0.05} # fractions, or counts (test: 40) with fractions sharing the rest
    stratify_by: source               # optional: split each source on its own, in exact proportions
    seed: 42
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datafactory import yamlfile
from datafactory.errors import RecipeError, did_you_mean
from datafactory.sources import SOURCES
from datafactory.store import NAME_RE
from datafactory.steps import STEPS
from datafactory.steps.split import check_splits

RESERVED_NAMES = {"samples"}

# The columns each output format must hold (TRL dataset types, see docs/SOURCES.md section 7).
FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("prompt", "completion"),
    "preference": ("prompt", "chosen", "rejected"),
    "prompt": ("prompt",),
    "text": ("text",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


ENCODINGS = ("utf-8", "cp949", "euc-kr", "utf-16", "auto")
_ENCODING_ALIASES = {"utf8": "utf-8", "utf-8-sig": "utf-8", "euckr": "euc-kr", "ms949": "cp949", "uhc": "cp949",
                     "utf16": "utf-16"}


def check_encoding(v: str) -> str:
    """One of ENCODINGS (case and common aliases forgiven): any other codec would decode Korean text into
    mojibake, or into nothing, without an error."""
    name = str(v).strip().lower().replace("_", "-")
    name = _ENCODING_ALIASES.get(name, name)
    if name not in ENCODINGS:
        raise ValueError(f"encoding '{v}' is not supported; use one of {', '.join(ENCODINGS)} "
                         "(auto reads UTF-16 by its byte-order mark, else tries UTF-8, then cp949)")
    return name


class CardSpec(_Strict):
    pretty_name: str | None = None
    language: list[str] = ["ko"]
    license: str = "other"
    license_name: str | None = None  # with license: other (the HF card spec); default: from the sources
    license_link: str | None = None  # default: LICENSE.md beside the card, listing every source's terms
    task_categories: list[str] = []
    tags: list[str] = []


class SourceSpec(_Strict):
    kind: str
    path: str | None = None
    options: dict[str, Any] = {}
    encoding: str = "utf-8"
    on_error: Literal["fail", "quarantine"] = "fail"
    license: str | None = None
    redistribute: bool | None = None  # may its text be published? default: what the kind's terms say
    allow_empty: bool = False  # a source that yields no rows fails the build unless this is set

    _encoding = field_validator("encoding")(classmethod(lambda cls, v: check_encoding(v)))


class OutputSpec(_Strict):
    format: Literal["sft", "preference", "prompt", "text"]
    # TRL's dataset types: text columns (standard), or lists of {role, content} messages (see conversations.py)
    type: Literal["standard", "conversational"] = "standard"


class RecipeFile(_Strict):
    name: str
    description: str = ""
    card: CardSpec = CardSpec()
    sources: dict[str, SourceSpec] = Field(min_length=1)
    steps: list[Any] = []
    output: OutputSpec
    splits: dict[str, float | int] | None = None
    stratify_by: str | None = None
    seed: int = 42

    @field_validator("splits")
    @classmethod
    def _check_splits(cls, v):
        return v if v is None else check_splits(v)

    @model_validator(mode="after")
    def _stratify_needs_splits(self):
        if self.stratify_by is not None and self.splits is None:
            raise ValueError("stratify_by needs splits (e.g. splits: {train: 0.9, test: 0.1})")
        return self


@dataclass
class StepSpec:
    name: str
    params: BaseModel
    sources: list[str] | None
    key: str  # where it sits in the recipe, for errors: "steps[2].filter"

    def canonical(self) -> dict:
        out: dict[str, Any] = {"step": self.name, "params": self.params.model_dump(mode="json")}
        if self.sources is not None:
            out["sources"] = self.sources
        return out


@dataclass
class Recipe:
    name: str
    file: Path
    description: str
    card: CardSpec
    sources: dict[str, SourceSpec]
    source_options: dict[str, BaseModel]
    steps: list[StepSpec]
    output: OutputSpec
    splits: dict[str, float | int] | None
    stratify_by: str | None
    seed: int
    overrides: dict[str, str] = field(default_factory=dict)

    def canonical(self, *, with_paths: bool = True) -> dict:
        """Everything that defines this recipe, with defaults filled in and keys sorted when hashed.

        Paths are left out of the version id (``with_paths=False``): the same bytes read from another
        folder give the same dataset; the input fingerprints enter the id instead.
        """
        sources = {}
        for name, spec in self.sources.items():
            s = spec.model_dump(mode="json")
            s["options"] = self.source_options[name].model_dump(mode="json")
            if not with_paths:
                s.pop("path")
            sources[name] = s
        return {
            "name": self.name,
            "description": self.description,
            "card": self.card.model_dump(mode="json"),
            "sources": sources,
            "steps": [s.canonical() for s in self.steps],
            "output": self.output.model_dump(mode="json"),
            "splits": self.splits,
            "stratify_by": self.stratify_by,
            "seed": self.seed,
        }

    def upstream(self) -> dict[str, str]:
        """source name -> dataset name, for sources of ``kind: dataset``."""
        return {n: self.source_options[n].name for n, s in self.sources.items() if s.kind == "dataset"}


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The (nested) model that holds the last key of ``loc``, to suggest its field names."""
    for part in loc[:-1]:
        field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
        if field is None:
            return None
        args = typing.get_args(field.annotation) or (field.annotation,)
        model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return model


def _raise_validation(file: str, prefix: str, err: ValidationError, model: type[BaseModel] | None) -> None:
    e = err.errors()[0]
    loc = tuple(e["loc"])
    key = ".".join(x for x in (prefix, _key_path(loc)) if x)
    if e["type"] == "extra_forbidden":
        holder = _model_at(model, loc)
        fields = holder.model_fields if holder is not None else {}
        hint = did_you_mean(str(loc[-1]), fields)
        known = f"known keys: {', '.join(fields)}" if fields else ""
        raise RecipeError(file, key, "unknown key", hint or known)
    if e["type"] == "missing":
        raise RecipeError(file, key, "required key is missing", "add it")
    msg = e["msg"].removeprefix("Value error, ")
    got = e.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) else ""
    raise RecipeError(file, key, msg + shown)


def _validate(file: str, prefix: str, model: type[BaseModel], data: Any) -> BaseModel:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(file, prefix, f"expected a mapping of parameters, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        _raise_validation(file, prefix, err, model)
        raise  # unreachable


def _parse_step(file: str, index: int, item: Any, source_names: set[str]) -> StepSpec:
    where = f"steps[{index}]"
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
        params = {} if params is None else params
    else:
        raise RecipeError(file, where, "each step is one `name: {params}` mapping or a bare step name",
                          "e.g. `- filter: {length: {column: output, min: 2}}`")
    if name not in STEPS:
        hint = did_you_mean(str(name), STEPS)
        raise RecipeError(file, where, f"unknown step '{name}'", hint or f"known steps: {', '.join(sorted(STEPS))}")
    key = f"{where}.{name}"
    if not isinstance(params, dict):
        raise RecipeError(file, key, f"expected a mapping of parameters, got {type(params).__name__}")
    params = dict(params)
    only = params.pop("sources", None)
    if only is not None:
        if isinstance(only, str):
            only = [only]
        if not isinstance(only, list) or not all(isinstance(s, str) for s in only):
            raise RecipeError(file, f"{key}.sources", f"expected a source name or a list of them, got {only!r}",
                              f"sources: {', '.join(sorted(source_names))}")
        unknown = [s for s in only if s not in source_names]
        if unknown:
            hint = did_you_mean(str(unknown[0]), source_names)
            raise RecipeError(file, f"{key}.sources", f"no source named '{unknown[0]}'", hint or f"sources: {', '.join(sorted(source_names))}")
    model = STEPS[name].Params
    return StepSpec(name, _validate(file, key, model, params), only, key)


def load_recipe(path: Path, overrides: dict[str, str] | None = None) -> Recipe:
    """Read and validate ``path``. ``overrides`` maps source name -> path (``--source NAME=PATH``)."""
    file = str(path)
    try:
        raw = yamlfile.safe_load(path.read_text("utf-8"))
    except FileNotFoundError:
        raise RecipeError(file, "", "no such recipe file") from None
    except IsADirectoryError:
        raise RecipeError(file, "", "is a folder, not a recipe file", "give the recipe's .yaml file") from None
    except OSError as e:
        raise RecipeError(file, "", f"cannot be read ({e.strerror or e})", "check the file's permissions") from None
    except UnicodeDecodeError as e:
        raise RecipeError(file, "", f"not UTF-8 at byte {e.start}", "save the recipe as UTF-8") from None
    except yaml.YAMLError as e:
        raise RecipeError(file, "", yamlfile.describe(e)) from None
    if not isinstance(raw, dict):
        raise RecipeError(file, "", "a recipe is a YAML mapping with name, sources, steps and output")
    top = _validate(file, "", RecipeFile, raw)
    assert isinstance(top, RecipeFile)
    if not NAME_RE.match(top.name) or top.name in RESERVED_NAMES:
        raise RecipeError(file, "name", f"'{top.name}' is not a usable dataset name", "use letters, digits, _ . -")
    if top.name != path.stem:
        raise RecipeError(file, "name", f"'{top.name}' differs from the file name '{path.stem}'", "rename one of them")

    source_options: dict[str, BaseModel] = {}
    for sname, spec in top.sources.items():
        if not NAME_RE.match(sname):
            raise RecipeError(file, f"sources.{sname}", "not a usable source name", "use letters, digits, _ . -")
        if spec.kind not in SOURCES:
            hint = did_you_mean(spec.kind, SOURCES)
            raise RecipeError(file, f"sources.{sname}.kind", f"unknown source kind '{spec.kind}'",
                              hint or f"known kinds: {', '.join(sorted(SOURCES))}")
        source_options[sname] = _validate(file, f"sources.{sname}.options", SOURCES[spec.kind].Options, spec.options)
    overrides = dict(overrides or {})
    for sname, new_path in overrides.items():
        if sname not in top.sources:
            hint = did_you_mean(sname, top.sources)
            raise RecipeError(file, f"sources.{sname}", "--source names a source this recipe does not have",
                              hint or f"sources: {', '.join(top.sources)}")
        top.sources[sname] = top.sources[sname].model_copy(update={"path": new_path})

    names = set(top.sources)
    steps = [_parse_step(file, i, item, names) for i, item in enumerate(top.steps)]
    return Recipe(top.name, path, top.description, top.card, top.sources, source_options, steps, top.output,
                  top.splits, top.stratify_by, top.seed, overrides)


def recipe_path(recipes_dir: Path, name: str) -> Path:
    path = yamlfile.named(recipes_dir, name)
    if not path.exists():
        known = yamlfile.names(recipes_dir)
        hint = did_you_mean(name, known)
        raise RecipeError(str(path), "", f"no recipe named '{name}' in {recipes_dir}",
                          hint or (f"recipes: {', '.join(known)}" if known else
                                   f"there is no recipe folder at {recipes_dir.resolve()}; run inside your project "
                                   "(a folder holding recipes/) or use --recipes DIR" if not recipes_dir.is_dir()
                                   else "use --recipes DIR"))
    return path
