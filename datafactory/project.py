"""Where the project is, so ``datafactory.load("sft_v1")`` and the CLI find the store from anywhere inside it.

The rule (one, documented in the README):

1. ``DATAFACTORY_DATA`` (and ``DATAFACTORY_RECIPES``) when set;
2. else the project root: the nearest folder, going up from the current folder, that holds a ``recipes/``
   folder or a ``.datafactory`` marker file; if there is none, the same search from the folder of the script
   being run (a trainer launched from elsewhere: ``python ~/proj/trainers/sft.py``; not for the ``datafactory``
   command itself, whose script is wherever it was installed). The store is ``<root>/data`` and the recipes
   ``<root>/recipes``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from datafactory.errors import StoreError

MARKER = ".datafactory"


def _upward(start: Path) -> list[Path]:
    start = start.resolve()
    return [start, *start.parents]


def _starts(script: bool = True) -> list[Path]:
    starts = [Path.cwd()]
    path = Path(sys.argv[0]) if script and sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    if path is not None and path.is_file():
        starts.append(path.resolve().parent)
    return starts


def find_root(start: Path | None = None, *, script: bool = True) -> Path | None:
    """The project root above ``start`` (default: the current folder, then the running script's folder)."""
    for s in ([start] if start is not None else _starts(script)):
        for d in _upward(s):
            if (d / "recipes").is_dir() or (d / MARKER).exists():
                return d
    return None


def data_dir(*, required: bool = True, script: bool = True, hint: str = "pass data_dir=") -> Path:
    """The store: ``DATAFACTORY_DATA``, else ``<project root>/data``. When no project is found, ``./data``
    if not ``required``, else an error naming every folder looked at. ``script=False`` (the CLI) searches
    from the current folder only."""
    env = os.environ.get("DATAFACTORY_DATA")
    if env:
        return Path(env).expanduser()
    root = find_root(script=script)
    if root is not None:
        return root / "data"
    if not required:
        return Path("data")
    looked = "; ".join(f"{s} and the folders above it" for s in _starts(script))
    raise StoreError(f"no datafactory project found: looked for a recipes/ folder or a {MARKER} file in {looked}; "
                     f"run inside the project, set DATAFACTORY_DATA=/path/to/data, or {hint}")


def recipes_dir(*, script: bool = True) -> Path:
    env = os.environ.get("DATAFACTORY_RECIPES")
    if env:
        return Path(env).expanduser()
    root = find_root(script=script)
    return root / "recipes" if root is not None else Path("recipes")
