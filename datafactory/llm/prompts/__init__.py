"""Prompt templates as data (Korean): ``<name>.json`` with ``system`` / ``user`` (``{input}``, ``{text}``) or, for the
judge, a G-Eval ``template`` and its criteria. Their text enters the version id of the steps that use them."""
from __future__ import annotations

import json
from pathlib import Path

from datafactory.errors import DataFactoryError, did_you_mean

PROMPT_DIR = Path(__file__).parent


def load_prompt(name_or_path: str, base_dir: Path | None = None) -> dict:
    """A shipped prompt by name, or a JSON file of the same shape by path."""
    path = PROMPT_DIR / f"{name_or_path}.json"
    if not path.exists():
        path = Path(name_or_path).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    if not path.exists():
        shipped = sorted(p.stem for p in PROMPT_DIR.glob("*.json"))
        hint = did_you_mean(name_or_path, shipped)
        raise DataFactoryError(f"prompt '{name_or_path}': neither a shipped prompt ({', '.join(shipped)}) nor a file"
                               + (f"; {hint}" if hint else ""))
    try:
        return json.loads(path.read_text("utf-8"))
    except ValueError as e:
        raise DataFactoryError(f"{path}: not valid JSON ({e})") from None
