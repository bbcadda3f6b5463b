"""What the programs (``datafactory`` and the trainers) do to their output before they print."""
from __future__ import annotations

import contextlib
import sys


def utf8_output() -> None:
    """Standard output and error in UTF-8 where the locale's encoding cannot write Hangul (``LANG=en_US`` on a
    cluster, a C locale without Python's coercion): printing a record, a generated answer or an error about a
    Korean name died with UnicodeEncodeError, or came out as ``\\udced\\udc95...``. UTF-8 is also what
    `--json > rows.jsonl` should hold."""
    for stream in (sys.stdout, sys.stderr):
        try:
            "한".encode(stream.encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            with contextlib.suppress(AttributeError, ValueError):  # not a text stream we may reconfigure
                # surrogateescape: arguments the locale could not decode are written back as the bytes typed
                stream.reconfigure(encoding="utf-8", errors="surrogateescape")
