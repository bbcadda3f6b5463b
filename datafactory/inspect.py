"""``datafactory source KIND PATH``: parse a user's download without a recipe and report what it holds."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from datafactory import yamlfile
from datafactory.errors import DataFactoryError, did_you_mean
from datafactory.recipe import check_encoding
from datafactory.sources import SOURCES


def parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataFactoryError(f"--option '{item}': write it as KEY=VALUE")
        try:
            options[key] = yamlfile.safe_load(value)
        except yaml.YAMLError as e:
            raise DataFactoryError(f"--option '{item}': the value is not valid YAML ({str(e).splitlines()[0]})") from None
    return options


def inspect_source(kind: str, path: str, options: list[str], *, encoding: str = "utf-8", on_error: str = "quarantine",
                   head: int = 3) -> dict:
    if kind not in SOURCES or kind == "dataset":
        known = [k for k in SOURCES if k != "dataset"]
        hint = did_you_mean(kind, known)
        raise DataFactoryError(f"unknown source kind '{kind}'; " + (hint or f"known kinds: {', '.join(known)}"))
    if on_error not in ("fail", "quarantine"):
        raise DataFactoryError(f"--on-error '{on_error}': use fail or quarantine")
    try:
        encoding = check_encoding(encoding)
    except ValueError as e:
        raise DataFactoryError(f"--encoding: {e}") from None
    cls = SOURCES[kind]
    try:
        opts = cls.Options.model_validate(parse_options(options))
    except ValidationError as e:
        err = e.errors()[0]
        raise DataFactoryError(f"--option {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    source = cls("inspect", str(Path(path).expanduser()), opts, encoding=encoding, on_error=on_error)
    read = source.read()
    rows = read.frame.drop("source").head(head).to_dicts()
    return {
        "summary": {"kind": kind, "path": path, "files": read.files, "records": read.frame.height,
                    "skipped": read.skipped, "quarantined": read.quarantined, "cleaned": read.cleaned,
                    "warnings": read.warnings},
        "head": rows,
        "quarantine": read.quarantine,
    }
