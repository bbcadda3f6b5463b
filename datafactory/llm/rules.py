"""A rule-of-thumb stand-in for a G-Eval judge, for offline runs only (the loop profile's ``unmatched: rules``): it
reads no meaning, only whether an answer reads as Korean at all, so that a toy model's garbled or looping text never
wins a preference pair over a written answer.

The score (1.0-5.0) is 1 + 4 x the product of four shares, each 0-1:

- **fluency**: Kiwi's (kiwipiepy) morphological language model, its best analysis's log-probability per character
  (spaces left out): -3 or better (written Korean; the shipped sample answers average -3.2) counts 1, -7 or worse
  (syllables in a random order, a toy model's word salad: -8.7) counts 0, linearly between;
- **Hangul**: the share of Hangul among the letters, full from 50%;
- **repetition**: distinct 3-character shingles over all of them, full from 70% (a model looping on a phrase);
- **broken characters**: halved for each U+FFFD (a byte-level model's cut character) or lone jamo;

less 1 under 8 characters or over 1,500. Measured on the 133 sample answers of ``data/samples/llm_answers`` and
corrupted copies of each (``tests/llm/test_rules.py``): every written answer scores above its copy with syllables
shuffled, replaced by syllables drawn at random, looped, or with bytes cut; 131 of 133 above their words shuffled.
"""
from __future__ import annotations

import threading

from datafactory.errors import DataFactoryError
from datafactory.korean import hangul_share, is_jamo

VERSION = "rule-of-thumb-2"  # part of the judge's identity: a changed rule is a new request, never an old answer
FLUENT, GARBLED = -3.0, -7.0  # Kiwi log-probability per character: full marks, none
_kiwi = None
_lock = threading.Lock()


def _analyzer():
    global _kiwi
    with _lock:
        if _kiwi is None:
            try:
                from kiwipiepy import Kiwi
            except ImportError:
                raise DataFactoryError("the rule-of-thumb judge (unmatched: rules) reads Korean fluency with kiwipiepy, "
                                       "which is not installed: pip install -e '.[train]' (or pip install kiwipiepy)") from None
            _kiwi = Kiwi()
        return _kiwi


def fluency(text: str) -> float:
    """Kiwi's log-probability of the best analysis of ``text``, per character (spaces not counted)."""
    chars = len("".join(text.split()))
    if not chars:
        return GARBLED
    kiwi = _analyzer()
    with _lock:  # one Kiwi object, not shared across threads at once
        (_, logprob), = kiwi.analyze(text, top_n=1)
    return logprob / chars


def _share(x: float, full: float) -> float:
    return max(0.0, min(1.0, x / full))


def rule_score(answer: str) -> float:
    """The stand-in's score of one answer, 1.0 to 5.0 (see the module's text)."""
    text = answer.strip()
    hangul = hangul_share(text)
    if hangul is None:
        return 1.0
    shingles = [text[i:i + 3] for i in range(max(0, len(text) - 2))]
    distinct = len(set(shingles)) / len(shingles) if shingles else 1.0
    broken = sum(c == "\ufffd" or is_jamo(c) or "\u1100" <= c <= "\u11ff" for c in text)
    fluent = _share(fluency(text) - GARBLED, FLUENT - GARBLED) if hangul else 0.0
    score = 1.0 + 4.0 * fluent * _share(hangul, 0.5) * _share(distinct, 0.7) * 0.5 ** broken
    score -= 1.0 if len(text) < 8 else 0.0
    score -= 1.0 if len(text) > 1500 else 0.0
    return round(max(1.0, score), 4)
