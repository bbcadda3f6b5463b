"""pii: finds Korean and general personal data in the named columns (text, or lists of ``{role, content}``
messages) and masks each piece with a placeholder naming its kind (``<주민등록번호>``, ``<전화번호>``), or drops the
row (``action: drop``). The kinds and how each is recognised: datafactory/pii.py.

    - pii: {columns: [instruction, output, history]}                 # mask every kind
    - pii: {columns: [prompt], action: drop, kinds: [rrn, frn, card]}
    - pii: {columns: [text], keep_business_numbers: true}            # 1588-1234 stays

Counted by kind in the manifest (the step's ``info.pii``) and on the card's "Data safety" section; dropped rows are
counted under ``pii``. Masked text never reaches a split file, the card's examples or a later step.
"""
from __future__ import annotations

from collections import Counter
from typing import Literal

import polars as pl
from pydantic import field_validator

from datafactory.pii import KINDS, mask
from datafactory.steps.base import LINEAGE, Params, Step, StepContext, StepError, require_columns


class PiiParams(Params):
    columns: list[str]
    action: Literal["mask", "drop"] = "mask"
    kinds: list[str] | None = None  # default: every kind
    keep_business_numbers: bool = False

    @field_validator("kinds")
    @classmethod
    def _known(cls, v):
        unknown = [k for k in v or [] if k not in KINDS]
        if unknown:
            raise ValueError(f"no kind '{unknown[0]}' (kinds: {', '.join(KINDS)})")
        return v

    @field_validator("columns")
    @classmethod
    def _some(cls, v):
        if not v:
            raise ValueError("name the columns to check (columns: [instruction, output])")
        if any(c in LINEAGE for c in v):
            raise ValueError(f"columns: {', '.join(c for c in v if c in LINEAGE)} hold no text to check")
        return v


def _kind_of(dtype) -> str | None:
    if dtype == pl.String:
        return "text"
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct) and "content" in {f.name for f in dtype.inner.fields}:
        return "messages"
    if isinstance(dtype, pl.List) and dtype.inner == pl.String:
        return "texts"
    return None


class Pii(Step):
    name = "pii"
    Params = PiiParams

    def needs(self, after: set[str]) -> set[str] | None:
        return after | set(self.params.columns)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_columns(df, p.columns)
        kinds = tuple(p.kinds or KINDS)
        counts: Counter = Counter()
        memo: dict[str, tuple[str, Counter]] = {}

        def one(text):
            if text is None:
                return None, Counter()
            if text not in memo:
                memo[text] = mask(text, kinds, keep_business_numbers=p.keep_business_numbers)
            return memo[text]

        hit = [False] * df.height
        out = {}
        for c in p.columns:
            shape = _kind_of(df.schema[c])
            if shape is None:
                raise StepError(f"pii: column '{c}' is {df.schema[c]}, not text or a list of messages; name the text "
                                "columns (or cast it to text first)")
            values = df[c].to_list()
            new = []
            for i, v in enumerate(values):
                if shape == "text":
                    masked, n = one(v)
                elif shape == "texts":
                    pairs = [one(t) for t in v] if v is not None else []
                    masked, n = (None if v is None else [m for m, _ in pairs]), sum((k for _, k in pairs), Counter())
                else:
                    n, masked = Counter(), None
                    if v is not None:
                        masked = []
                        for m in v:
                            text, k = one(m.get("content"))
                            masked.append({**m, "content": text})
                            n += k
                if n:
                    hit[i] = True
                    counts.update({f"{c}:{k}": v for k, v in n.items()})
                new.append(masked)
            out[c] = pl.Series(c, new, dtype=df.schema[c])
        by_kind = Counter()
        for key, n in counts.items():
            by_kind[key.split(":", 1)[1]] += n
        rows = sum(hit)
        ctx.info["pii"] = {"action": p.action, "kinds_checked": list(kinds), "columns": p.columns, "rows": rows,
                           "found": dict(sorted(by_kind.items())), "by_column": dict(sorted(counts.items())),
                           "keep_business_numbers": p.keep_business_numbers}
        if p.action == "drop":
            ctx.drop("pii", rows)
            return df.filter(~pl.Series(hit, dtype=pl.Boolean))
        return df.with_columns(*out.values())
