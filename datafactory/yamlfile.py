"""YAML as people write it: loaded safely, and a key written twice in one mapping is an error. PyYAML keeps the
last one without a word, so a source block copied and not renamed replaced the first source (or a step's
parameter its earlier value) silently. Keys a merge (``<<: *base``) brings in may still be overridden."""
from __future__ import annotations

from pathlib import Path

import yaml


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # a key that cannot be one (a list): PyYAML says so itself
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key '{key}' is written twice in one mapping (first on line {first.line + 1}); "
                        "the second would replace the first without a word: rename or remove one", key_node.start_mark)
        return super().construct_mapping(node, deep)


def safe_load(text: str):
    """``yaml.safe_load`` that refuses a key written twice in one mapping (a ``yaml.YAMLError`` with its line), and
    YAML nested past what the loader's recursion can hold (5,000 ``[``: a RecursionError)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError("nested too deeply (thousands of levels): no recipe or profile is; is this the file "
                             "you meant?") from None


def describe(error: yaml.YAMLError) -> str:
    """A YAML error in a user's words: where (line and column) and what."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"not valid YAML: {where}{getattr(error, 'problem', None) or str(error).splitlines()[0]}"


def named(folder: Path, name: str) -> Path:
    """``folder/name.yaml``, or ``name.yml`` where only that is there (both spellings are common)."""
    path = folder / f"{name}.yaml"
    if not path.exists() and (yml := folder / f"{name}.yml").exists():
        return yml
    return path


def names(folder: Path) -> list[str]:
    """The names of the YAML files in ``folder`` (``.yaml`` and ``.yml``), sorted; none for a missing folder."""
    if not folder.is_dir():
        return []
    return sorted({p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()})
