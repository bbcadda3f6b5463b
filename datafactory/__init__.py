"""datafactory: a Korean RLHF dataset factory. Recipes build versioned Arrow datasets; trainers load them by name.

    import datafactory
    ds = datafactory.load("sft_v1", split="train")     # latest version
    dd = datafactory.load("sft_v1@3f2a9c1b7d0e")       # a pinned version, every split (DatasetDict)

The store is found by one rule (``datafactory.project``): ``DATAFACTORY_DATA``, else ``data/`` in the nearest
folder above the current one (or above the running script) that holds ``recipes/`` or a ``.datafactory`` file.
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def default_data_dir(*, required: bool = True, script: bool = True) -> Path:
    """The store by the rule above; an error naming where it looked when there is none (``required``)."""
    from datafactory.project import data_dir

    return data_dir(required=required, script=script)


def load(ref: str, split: str | None = None, *, data_dir: str | Path | None = None):
    """A built dataset by name (``name`` or ``name@version``) as a ``datasets.Dataset`` (one split) or
    ``DatasetDict`` (all splits). ``datafactory.manifest(ref)`` gives the recipe, lineage and template."""
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets.table import InMemoryTable

    from datafactory.errors import StoreError
    from datafactory.store import Store

    store = Store(Path(data_dir) if data_dir is not None else default_data_dir())
    name, version = store.resolve(ref)
    manifest = store.check(name, version)
    info = DatasetInfo(description=f"{name}@{version} ({manifest['format']}), built by datafactory",
                       dataset_name=name, version=None)

    def one(s: str) -> Dataset:
        if s not in manifest["files"]:
            raise StoreError(f"{name}@{version} has no split '{s}' (splits: {', '.join(manifest['files'])})")
        table = pq.read_table(store.version_dir(name, version) / manifest["files"][s])
        return Dataset(InMemoryTable(table), info=info.copy(), split=s, fingerprint=f"{name}-{version}-{s}")

    if split is not None:
        return one(split)
    return DatasetDict({s: one(s) for s in manifest["files"]})


def manifest(ref: str, *, data_dir: str | Path | None = None) -> dict:
    """The manifest of a built dataset: recipe, lineage, step counts, template, schema."""
    from datafactory.store import Store

    store = Store(Path(data_dir) if data_dir is not None else default_data_dir())
    return store.manifest(*store.resolve(ref))
