"""normalize: Unicode and whitespace normalisation of text columns.

NFC by default: Korean text from macOS or some OCR tools arrives as decomposed jamo (NFD), which looks the
same but never matches, dedups or tokenizes like composed syllables. Also removes zero-width and control
characters (keeping newlines and tabs), collapses runs of spaces, and strips each value.
"""
from __future__ import annotations

from typing import Literal

import polars as pl

from datafactory.korean import only_where
from datafactory.steps.base import Params, Step, StepContext, require_columns, string_columns


class NormalizeParams(Params):
    columns: list[str] | None = None  # default: every text column except id/source
    unicode: Literal["NFC", "NFKC", "none"] = "NFC"
    collapse_spaces: bool = True
    strip: bool = True
    remove_control: bool = True


class Normalize(Step):
    name = "normalize"
    Params = NormalizeParams

    def needs(self, after: set[str]) -> set[str] | None:
        return None if self.params.columns is None else after | set(self.params.columns)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        cols = p.columns if p.columns is not None else string_columns(df)
        require_columns(df, cols)
        if p.unicode == "NFC":  # only values with a character that NFC could change: ASCII and Hangul syllables are NFC
            df = df.with_columns(_nfc(df[c].cast(pl.String)) for c in cols)
        exprs, needs = [], []
        for c in cols:
            e = pl.col(c).cast(pl.String)
            if p.unicode == "NFKC":
                e = e.str.normalize(p.unicode)
            if p.remove_control:
                e = e.str.replace_all(CONTROL, "")
                needs.append(CONTROL)
            if p.collapse_spaces:  # runs of two or more, or one that is not a plain space (same result, fewer writes)
                e = e.str.replace_all(r"[ \t\u00a0\u3000]{2,}|[\t\u00a0\u3000]", " ").str.replace_all(r" *\n *", "\n")
                needs += [r"[ \t\u00a0\u3000]{2,}|[\t\u00a0\u3000]", r" \n|\n "]
            if p.strip:
                e = e.str.strip_chars()
                needs.append(r"^\s|\s$")
            exprs.append(e)
        if p.unicode == "NFKC" or not needs:
            return df.with_columns(e.alias(c) for e, c in zip(exprs, cols))
        # the rules change only values with one of these: the others are kept as they are, and only the few values
        # that change are rewritten (not every value once per rule: a copy of the column each, on a large corpus)
        pattern = "|".join(dict.fromkeys(needs))
        return df.with_columns(only_where(df[c].cast(pl.String), pattern, e) for e, c in zip(exprs, cols))


CONTROL = r"[\u200b-\u200f\u2060\ufeff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


def _nfc(s: pl.Series) -> pl.Series:
    return only_where(s, r"[^\x00-\x7f가-힣]", pl.col(s.name).str.normalize("NFC"))
