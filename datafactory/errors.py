"""Errors a user can cause. Each names the file, row or recipe key and says what to do.

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataFactoryError(Exception):
    """A mistake in input or configuration that the user can fix."""


class RecipeError(DataFactoryError):
    """A recipe that does not parse or validate: names the file and the key path."""

    def __init__(self, file: str, key: str, problem: str, fix: str = ""):
        self.file, self.key, self.problem, self.fix = file, key, problem, fix
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}" + (f" ({fix})" if fix else ""))


class SourceError(DataFactoryError):
    """A source file or record that cannot be read: names the file and the record index."""


class StoreError(DataFactoryError):
    """A dataset or version that is not in the store, or a store that is in an unusable state."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' did you mean 'filter'?' for 'fliter', or '' when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""
