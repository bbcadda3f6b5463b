"""Prompt templates are data: ``<name>.json`` files in the Alpaca-LoRA/KULLM shape.

``{"prompt_input": "...{instruction}...{input}...", "prompt_no_input": "...{instruction}...", "response_split": "..."}``
``kullm`` is nlpai-lab/KULLM ``templates/kullm.json``, byte for byte (docs/SOURCES.md section 6).
"""
from __future__ import annotations

import json
from pathlib import Path

from datafactory.errors import DataFactoryError, did_you_mean

TEMPLATE_DIR = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.json"))


def load_template(name_or_path: str, base_dir: Path | None = None) -> dict:
    """A shipped template by name, or a JSON file of the same shape by path."""
    path = TEMPLATE_DIR / f"{name_or_path}.json"
    if not path.exists():
        path = Path(name_or_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    if not path.exists():
        hint = did_you_mean(name_or_path, available())
        raise DataFactoryError(f"template '{name_or_path}': neither a shipped template ({', '.join(available())}) nor a file"
                               + (f"; {hint}" if hint else ""))
    try:
        tpl = json.loads(path.read_text("utf-8"))
    except ValueError as e:
        raise DataFactoryError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in ("prompt_input", "prompt_no_input") if k not in tpl]
    if missing:
        raise DataFactoryError(f"{path}: template lacks {', '.join(missing)}")
    import string

    for k in ("prompt_input", "prompt_no_input"):
        try:
            list(string.Formatter().parse(tpl[k]))
        except ValueError as e:
            raise DataFactoryError(f"{path}: {k} has a brace that opens or closes no {{field}} ({e}); write {{{{ or "
                                   "}}}} for a literal brace") from None
    return tpl
