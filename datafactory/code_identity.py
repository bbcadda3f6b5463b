"""What code made a step's or a source's rows: the identity that enters cache keys and version ids."""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from datafactory.hashing import VERSION_LEN, digest

# Libraries whose version can change the bytes a step or source makes (polars' string functions and joins, msgspec's
# JSON decoding, numpy's sampling, the column hash, Python's Unicode tables): a module that imports one carries its
# version into the code identity. Those that only read or write files as they are (pyarrow, zipfile) do not.
ROW_SHAPING = {"polars": "polars", "msgspec": "msgspec", "numpy": "numpy", "polars_hash": "polars-hash",
               "xxhash": "xxhash", "unicodedata": None}
PACKAGE = "datafactory"


@dataclass(frozen=True)
class CodeIdentity:
    """What a step's or source's code is: its declared ``version``, the digest of every module of this package its
    code can run (the class hierarchy's modules and the project modules they import, transitively, function-level
    imports included) and the versions of the row-shaping libraries those import. ``digest`` enters the cache keys
    and so the version ids; ``to_json`` goes to the manifest, so ``diff`` can say which module or library changed."""
    version: int
    modules: dict[str, str]
    libraries: dict[str, str]

    @functools.cached_property
    def digest(self) -> str:
        return digest(self.version, self.modules, self.libraries)[:VERSION_LEN]

    def to_json(self) -> dict:
        return {"version": self.version, "digest": self.digest, "modules": dict(self.modules),
                "libraries": dict(self.libraries)}


def code_identity(cls: type) -> CodeIdentity:
    """The code identity of a step or source class (resolved once per class and process)."""
    return _code_identity(cls)


@functools.lru_cache(maxsize=None)
def _code_identity(cls: type) -> CodeIdentity:
    roots = [c.__module__ for c in cls.__mro__ if c.__module__.split(".")[0] == PACKAGE]
    modules: dict[str, str] = {}
    libraries: dict[str, str] = {}
    todo = list(dict.fromkeys(roots))
    if cls.__module__.split(".")[0] != PACKAGE:  # a class defined elsewhere (a test's, a plugin's): its own module
        import inspect

        modules[cls.__module__] = hashlib.sha256(inspect.getsource(inspect.getmodule(cls)).encode()).hexdigest()[:16]
    while todo:
        name = todo.pop()
        if name in modules:
            continue
        text, imports, libs = _module_facts(name)
        modules[name] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        libraries.update(libs)
        todo.extend(m for m in imports if m not in modules)
    return CodeIdentity(getattr(cls, "version", 1), dict(sorted(modules.items())), dict(sorted(libraries.items())))


def code_version(cls: type) -> str:
    """The short digest of ``code_identity(cls)``: what enters a cache key."""
    return code_identity(cls).digest


# an import statement at the start of a line (a function's own included): `import a.b as c, d`, `from a.b import (c,
# d as e)`, `from . import x`. Read with a regular expression, not ast: 0.2 ms against 2.5 ms a module, on every plan
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)|import[ \t]+([^\n#;]+))", re.M)


@functools.lru_cache(maxsize=None)
def _module_facts(name: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """A module of this package: its source (line ends made newlines), the modules of this package it imports
    anywhere in its text (a function's own ``import`` included: most of ours import lazily), and the row-shaping
    libraries it imports with their versions. A package's ``__init__`` counts only where something is imported from
    it by name (``from datafactory.templates import load_template``), not as the parent of a module (the registries in
    ``steps/__init__.py`` would otherwise make every step depend on every other)."""
    path = _module_path(name)
    text = path.read_text("utf-8").replace("\r\n", "\n")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imports: list[str] = []
    libs: dict[str, str] = {}
    for mod, names in imported(text, package):
        top = mod.split(".")[0]
        if top == PACKAGE:
            subs = [f"{mod}.{n}" for n in names or () if _is_module(f"{mod}.{n}")]
            imports.extend(subs)
            if names is None or len(subs) < len(names):  # `import x.y`, or names defined in the module itself
                imports.append(mod)
        elif top in ROW_SHAPING:
            libs[top] = _library_version(top)
    return text, tuple(dict.fromkeys(imports)), tuple(sorted(libs.items()))


def imported(text: str, package: str) -> list[tuple[str, list[str] | None]]:
    """The import statements of a module's text: (module, the names imported from it, or None for ``import m``),
    relative ones resolved against ``package``."""
    out = []
    for m in _IMPORT.finditer(text):
        if m.group(3) is not None:  # import a.b as c, d
            out += [(_first(part), None) for part in m.group(3).split(",") if part.strip()]
        else:
            base = m.group(1)
            level = len(base) - len(base.lstrip("."))
            if level:  # relative: from .x import y
                parent = package.split(".")
                base = ".".join([*parent[:len(parent) - level + 1], *([base[level:]] if base[level:] else [])])
            out.append((base, [_first(part) for part in m.group(2).strip("()").split(",") if part.strip()]))
    return out


def _first(part: str) -> str:
    """``a.b as c`` -> ``a.b``"""
    return part.split()[0] if part.split() else ""


def _module_path(name: str) -> Path:
    root = Path(__file__).resolve().parent
    rel = Path(*name.split(".")[1:])
    return root / rel / "__init__.py" if (root / rel).is_dir() else (root / rel).with_suffix(".py")


def _is_module(name: str) -> bool:
    return _module_path(name).is_file()


@functools.lru_cache(maxsize=None)
def _library_version(top: str) -> str:
    import sys
    import types

    if top == "unicodedata":
        import unicodedata

        return f"unicode {unicodedata.unidata_version}"
    module = sys.modules.get(top)
    if type(module) is types.ModuleType:  # imported already (not the CLI's lazy polars): no search of installed files
        loaded = getattr(module, "__version__", None)
        if isinstance(loaded, str):
            return loaded
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(ROW_SHAPING[top])
    except PackageNotFoundError:
        return "not installed"
