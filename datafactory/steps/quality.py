"""quality: Korean-aware heuristic filters, each a reason of its own (Gopher's rules, Rae et al. 2021, read for
Korean: words are 어절, space-separated; n-grams are of them).

    - quality: {columns: [output]}                                  # every rule, default limits
    - quality: {columns: [text], min_hangul_share: 0.5, max_jamo_run: 5}

Rules (a row is dropped for the first it breaks, counted as ``quality_<rule>``), each off with ``null``:

- ``max_jamo_run`` (10): the longest run of one bare jamo (``ㅋㅋㅋㅋㅋ``, ``ㅠㅠㅠ``);
- ``min_hangul_share`` (0.3): Hangul (syllables and jamo) among the letters;
- ``max_symbol_share`` (0.3): characters that are neither letters, digits nor spaces (emoji included), in texts of
  at least 10 characters (``네.`` is half punctuation, and an answer);
- ``max_duplicate_line_share`` (0.3): lines that repeat an earlier line of the text;
- ``max_top_ngram_share`` (2-grams 0.2, 3-grams 0.18, 4-grams 0.16): the characters covered by the most frequent
  word n-gram (texts of at least ``min_words_for_ngrams``, 20 words);
- ``mean_word_length`` ([1.5, 12]): characters per word.

Counted per rule in the manifest (``info.quality``) and, for dropped rows, as drop reasons.
"""
from __future__ import annotations

import re
from collections import Counter

import polars as pl

from datafactory.korean import hangul_share
from datafactory.steps.base import Params, Step, StepContext, require_text_columns, text_of

JAMO_RUN = re.compile(r"([\u3131-\u318e])\1*")


class QualityParams(Params):
    columns: list[str]
    min_hangul_share: float | None = 0.3
    max_jamo_run: int | None = 10
    max_symbol_share: float | None = 0.3
    max_duplicate_line_share: float | None = 0.3
    max_top_ngram_share: dict[int, float] | None = {2: 0.2, 3: 0.18, 4: 0.16}
    min_words_for_ngrams: int = 20
    mean_word_length: tuple[float, float] | None = (1.5, 12.0)


def broken_rule(text: str, p: QualityParams) -> str | None:
    """The first rule ``text`` breaks, or None."""
    if p.max_jamo_run is not None:
        if max((len(m.group()) for m in JAMO_RUN.finditer(text)), default=0) > p.max_jamo_run:
            return "jamo_run"
    if p.min_hangul_share is not None:
        share = hangul_share(text, jamo=True)
        if share is not None and share < p.min_hangul_share:
            return "hangul_share"
    chars = [c for c in text if not c.isspace()]
    if p.max_symbol_share is not None and len(chars) >= 10:  # "네." is half punctuation, and an answer
        if sum(not c.isalnum() for c in chars) / len(chars) > p.max_symbol_share:
            return "symbols"
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    if p.max_duplicate_line_share is not None and len(lines) > 1:
        if (len(lines) - len(set(lines))) / len(lines) > p.max_duplicate_line_share:
            return "duplicate_lines"
    words = text.split()
    if p.max_top_ngram_share and len(words) >= p.min_words_for_ngrams:
        total = sum(len(w) for w in words)
        for n, limit in sorted(p.max_top_ngram_share.items()):
            grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
            gram, count = grams.most_common(1)[0]
            if count > 1 and count * sum(len(w) for w in gram) / total > limit:
                return f"top_{n}gram"
    if p.mean_word_length is not None and words:
        mean = sum(len(w) for w in words) / len(words)
        if not p.mean_word_length[0] <= mean <= p.mean_word_length[1]:
            return "word_length"
    return None


class Quality(Step):
    name = "quality"
    Params = QualityParams

    def needs(self, after: set[str]) -> set[str] | None:
        return after | set(self.params.columns)

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_text_columns(df, p.columns, "quality")
        reasons = []
        for values in zip(*(df[c].to_list() for c in p.columns)):
            reason = None
            for v in values:  # each column on its own: a short answer next to a long prompt
                text = text_of(v)
                if text.strip():
                    reason = broken_rule(text, p)
                    if reason:
                        break
            reasons.append(reason)
        counts = Counter(r for r in reasons if r)
        ctx.info["quality"] = {"dropped": dict(sorted(counts.items())), "settings": p.model_dump(mode="json")}
        for r, n in counts.items():
            ctx.drop(f"quality_{r}", n)
        return df.filter(pl.Series([r is None for r in reasons], dtype=pl.Boolean))
