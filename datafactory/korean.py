"""Hangul-aware cleaning of NIKL transcription markup and de-identification tokens (SOURCES.md 1.4, 1.6).

``clean_utterance`` turns a ``form`` or ``original_form`` string into plain text:

- event tags ``{laughing}``, ``{clearing}``, ``{singing}``, ``{applauding}``/``{applausing}``, and the messenger's
  ``{emoji}``, ``{system: gift}``, ``{share:photo}`` ... are removed;
- ``((xx))`` (inaudible syllables) and ``(())`` (inaudible part) are removed; ``((추정 전사))`` (a guessed
  transcription) keeps its text, or drops it with ``guessed="drop"``;
- filler syllables with a discourse ``~`` (``음~``, ``어~``, ``아~``, ``그~``) are removed, and other ``~`` marks
  (lengthening, ``그렇지~``) lose the ``~``;
- incomplete-word marks ``-word-`` (``original_form``) are removed with the fragment, or kept without dashes;
- pseudonym tokens, numbered or not, with ampersands (``&name1&``, ``&address&``) or bare as ``form`` has them
  (``name1``), become Korean placeholders (configurable);
- runs of spaces collapse to one.
"""
from __future__ import annotations

import re

# Placeholders for de-identified spans. "{n}" in a value receives the token's number ("name2" -> 2), so
# speakers stay distinct when a recipe asks for it (e.g. {"name": "사람{n}"}).
DEFAULT_PLACEHOLDERS: dict[str, str] = {
    "name": "○○",
    "address": "○○동",
    "tel-num": "010-0000-0000",
    "card-num": "0000-0000-0000-0000",
    "social-security-num": "000000-0000000",
    "account": "000-000000-00",
    "company-name": "○○회사",
    "affiliation": "○○",
    "brands": "○○",
    "others": "○○",
    "other": "○○",
    "num": "0",
    "email": "abc@example.com",
}

_EVENT = re.compile(r"\{[^{}]*\}")
_DOUBLE_PAREN = re.compile(r"\(\(([^()]*)\)\)")
_INAUDIBLE = re.compile(r"^\s*x*\s*$", re.IGNORECASE)
_FILLER = re.compile(r"(?<![가-힣])(?:음|어|아|그|으|흠|에|저|엄|응)~+")
_TILDE = re.compile(r"~+")
_INCOMPLETE = re.compile(r"-([ㄱ-ㅎㅏ-ㅣ가-힣]+)-")
_SPACES = re.compile(r"[ \t\u00a0]{2,}")


def _token_pattern(kinds: list[str]) -> re.Pattern:
    alt = "|".join(sorted((re.escape(k) for k in kinds), key=len, reverse=True))
    # &name1& anywhere; bare name1 only where no ASCII letter touches it (keeps "username", "names")
    return re.compile(rf"&({alt})(\d*)&|(?<![A-Za-z&-])({alt})(\d*)(?![A-Za-z&-])")


_DEFAULT_TOKENS = _token_pattern(list(DEFAULT_PLACEHOLDERS))


def replace_pseudonyms(text: str, placeholders: dict[str, str] | None = None) -> str:
    table = DEFAULT_PLACEHOLDERS if placeholders is None else {**DEFAULT_PLACEHOLDERS, **placeholders}
    pattern = _DEFAULT_TOKENS if placeholders is None or set(table) == set(DEFAULT_PLACEHOLDERS) else _token_pattern(list(table))

    def sub(m: re.Match) -> str:
        kind = m.group(1) or m.group(3)
        num = m.group(2) if m.group(1) else m.group(4)
        return table[kind].replace("{n}", num or "1")

    return pattern.sub(sub, text)


def clean_utterance(text: str, *, placeholders: dict[str, str] | None = None, guessed: str = "keep",
                    incomplete: str = "drop", fillers: bool = True) -> str:
    text = _EVENT.sub(" ", text)

    def paren(m: re.Match) -> str:
        inner = m.group(1)
        if _INAUDIBLE.match(inner) or guessed == "drop":
            return " "
        return inner

    text = _DOUBLE_PAREN.sub(paren, text)
    text = _INCOMPLETE.sub(" " if incomplete == "drop" else r"\1", text)
    if fillers:
        text = _FILLER.sub(" ", text)
    text = _TILDE.sub("", text)
    text = replace_pseudonyms(text, placeholders)
    return _SPACES.sub(" ", text).strip()
