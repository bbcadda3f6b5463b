"""Lines of a JSON Lines (or any text) file, as the files are written: broken at "\n", "\r\n" or "\r" only.

``str.splitlines`` also breaks at characters a JSON string may hold raw (U+2028, U+2029, U+0085, written as they
are by ``json.dumps(..., ensure_ascii=False)`` and in text scraped from the web) and at \\x0b, \\x0c and
\\x1c-\\x1e: a valid record holding one was cut in two and both halves rejected as invalid JSON."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_OTHER_BREAKS = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"  # where splitlines breaks besides line ends
_BREAK = re.compile("\r\n|\r|\n")


def lines(text: str) -> list[str]:
    """The lines of ``text`` without their ends (a last line without one included), as ``splitlines`` gives them
    where it breaks only at line ends."""
    if not any(c in text for c in _OTHER_BREAKS):  # a scan per character: a fifth of a regex's time
        return text.splitlines()  # the same lines, faster
    out = _BREAK.split(text)
    if out and out[-1] == "":
        out.pop()
    return out


class BadLine(ValueError):
    """A line of a JSON Lines file that is not JSON: its number (from 1) and why."""

    def __init__(self, number: int, reason: str):
        super().__init__(f"line {number}: {reason}")
        self.number, self.reason = number, reason


def records(text: str) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed value) for each non-blank line of a JSON Lines text, broken at line ends only
    (``lines``); the first line that is not JSON raises ``BadLine`` for the caller to name its file."""
    for number, line in enumerate(lines(text), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except RecursionError:
            raise BadLine(number, "nested too deeply to read (thousands of levels)") from None
        except ValueError as e:
            raise BadLine(number, f"not valid JSON ({e})") from None
