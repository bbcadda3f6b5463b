"""Hangul-aware cleaning of NIKL transcription markup and de-identification tokens (docs/SOURCES.md 1.4, 1.6).

``clean_utterance`` turns a ``form`` or ``original_form`` string into plain text:

- event tags ``{laughing}``, ``{clearing}``, ``{singing}``, ``{applauding}``/``{applausing}``, and the messenger's
  ``{emoji}``, ``{system: gift}``, ``{share:photo}`` ... are removed;
- ``((xx))`` (inaudible syllables) and ``(())`` (inaudible part) are removed; ``((추정 전사))`` (a guessed
  transcription) keeps its text, or drops it with ``guessed="drop"``;
- inaudible syllables that survive in ``form`` as ``x`` (``이제 xx 장소로``, ``맨시x 맨체스터``) are removed;
- filler syllables with a discourse ``~`` (``음~``, ``어~``, ``아~``, ``그~``) are removed, and other ``~`` marks
  (lengthening, ``그렇지~``) lose the ``~``;
- incomplete-word marks ``-word-`` (``original_form``) are removed with the fragment, or kept without dashes;
  ``form`` has no marks but keeps the fragment doubled (``것 같 같습니다``): ``drop_fragments`` uses the marks
  of ``original_form`` to drop it there;
- de-identification tokens, numbered or not, with ampersands (``&name1&``, ``&company3&``) or bare as ``form``
  has them (``name1``, ``art1``), become Korean placeholders (configurable). Every kind the corpus guides use
  is known; an unknown ``&word&`` token becomes ``○○`` too, and is counted so a user sees it;
- runs of spaces collapse to one.

Pass a ``collections.Counter`` as ``counts`` to learn what was changed (``pseudonym``, ``unknown de-identification
token &word& ...``, ``inaudible_x``, ``repeated_fragment``).
"""
from __future__ import annotations

import re
from collections import Counter

# Placeholders for de-identified spans. "{n}" in a value receives the token's number ("name2" -> 2), so
# speakers stay distinct when a recipe asks for it (e.g. {"name": "사람{n}"}). The kinds are those of the
# NIKL corpus guides: daily conversation 2020-2022 (name, address, tel-num, card-num, social-security-num,
# company-name), messenger (account, num, affiliation, other) and the 2023-2024 releases (company, brand, art,
# email, url ...), in both spellings seen (brand/brands, other/others).
DEFAULT_PLACEHOLDERS: dict[str, str] = {
    "name": "○○",
    "address": "○○동",
    "tel-num": "010-0000-0000",
    "card-num": "0000-0000-0000-0000",
    "social-security-num": "000000-0000000",
    "passport-num": "M00000000",
    "car-num": "00가0000",
    "account": "000-000000-00",
    "company-name": "○○회사",
    "company": "○○회사",
    "affiliation": "○○",
    "brand": "○○",
    "brands": "○○",
    "art": "○○",
    "others": "○○",
    "other": "○○",
    "num": "0",
    "email": "abc@example.com",
    "url": "www.example.com",
    "id": "○○",
}
UNKNOWN_PLACEHOLDER = "○○"
# bare (no ampersands) and without a number, only these are tokens: "art", "other", "id" are English words
BARE_UNNUMBERED = ("name", "address", "tel-num", "card-num", "social-security-num", "passport-num", "car-num",
                   "company-name", "affiliation", "account")

_EVENT = re.compile(r"\{[^{}]*\}")
_DOUBLE_PAREN = re.compile(r"\(\(([^()]*)\)\)")
_INAUDIBLE = re.compile(r"^\s*x*\s*$", re.IGNORECASE)
# 'x' for an inaudible syllable in `form`: a run of two or more, one glued to the end of a Hangul word
# (맨시x), or one alone; never an x inside a Latin word or number (box, x2)
_INAUDIBLE_X = re.compile(r"(?<![A-Za-z0-9])x{2,}(?![A-Za-z0-9])|(?<=[가-힣])x+(?![A-Za-z0-9])"
                          r"|(?<![A-Za-z0-9가-힣])x(?![A-Za-z0-9가-힣])")
FILLER_SYLLABLES = "음|어|아|그|으|흠|에|저|엄|응"
_FILLER = re.compile(rf"(?<![가-힣])(?:{FILLER_SYLLABLES})~+")
_TILDE = re.compile(r"~+")
_INCOMPLETE = re.compile(r"-([ㄱ-ㅎㅏ-ㅣ가-힣]+)-")
_SPACES = re.compile(r"[ \t\u00a0]{2,}")
_AMP_ANY = re.compile(r"&([A-Za-z][A-Za-z_-]*?)(\d*)&")


def is_syllable(ch: str) -> bool:
    """A precomposed Hangul syllable (가-힣)."""
    return "\uac00" <= ch <= "\ud7a3"


def is_jamo(ch: str) -> bool:
    """A compatibility jamo as typed alone (ㄱ-ㅎ, ㅏ-ㅣ: ``ㅋㅋ``, ``ㅠㅠ``)."""
    return "\u3131" <= ch <= "\u318e"


def hangul_share(text: str, *, jamo: bool = False) -> float | None:
    """The share of Hangul among ``text``'s letters: syllables, and compatibility jamo too with ``jamo=True``
    (chat text such as ``ㅋㅋㅋ`` is Korean; a model's answer made of loose jamo is broken). None without letters."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return None
    return sum(is_syllable(ch) or (jamo and is_jamo(ch)) for ch in letters) / len(letters)


def _alternations(kinds) -> tuple[str, str]:
    """Regex alternations of every kind and of the kinds that are tokens bare and unnumbered, longest first (so
    "company-name" is tried before "company"): shared by the regex rule and the columnar pass."""
    by_len = lambda ks: "|".join(sorted((re.escape(k) for k in ks), key=len, reverse=True))  # noqa: E731
    return by_len(kinds), by_len([k for k in kinds if k in BARE_UNNUMBERED or k not in DEFAULT_PLACEHOLDERS])


def _token_pattern(kinds: list[str]) -> re.Pattern:
    every, bare = _alternations(kinds)
    # &name1& anywhere; bare name1 (any kind) or name (the distinctive kinds) only where no ASCII letter
    # touches it (keeps "username", "names", "art", "others")
    return re.compile(rf"&({every})(\d*)&|(?<![A-Za-z&-])(?:({every})(\d+)|({bare})())(?![A-Za-z&-])")


_DEFAULT_TOKENS = _token_pattern(list(DEFAULT_PLACEHOLDERS))


def replace_pseudonyms(text: str, placeholders: dict[str, str] | None = None, counts: Counter | None = None) -> str:
    table = DEFAULT_PLACEHOLDERS if placeholders is None else {**DEFAULT_PLACEHOLDERS, **placeholders}
    pattern = _DEFAULT_TOKENS if placeholders is None or set(table) == set(DEFAULT_PLACEHOLDERS) else _token_pattern(list(table))

    def sub(m: re.Match) -> str:
        kind = m.group(1) or m.group(3) or m.group(5)
        num = m.group(2) if m.group(1) else (m.group(4) if m.group(3) else "")
        if counts is not None:
            counts["pseudonym"] += 1
        return table[kind].replace("{n}", num or "1")

    def unknown(m: re.Match) -> str:
        if counts is not None:
            counts[f"unknown de-identification token &{m.group(1)}& (replaced with {UNKNOWN_PLACEHOLDER})"] += 1
        return UNKNOWN_PLACEHOLDER

    text = pattern.sub(sub, text)
    return _AMP_ANY.sub(unknown, text) if "&" in text else text


def drop_fragments(form: str, original_form: str, counts: Counter | None = None) -> str:
    """``form`` without the word fragments that ``original_form`` marks ``-frag-``: ``form`` keeps them
    doubled (``산 산다는`` for ``-산- 산다는``). A fragment is dropped where the next word repeats it, or where it
    stands alone once; otherwise (ambiguous) it stays."""
    pos = 0
    for frag in _INCOMPLETE.findall(original_form):
        f = re.escape(frag)
        m = re.compile(rf"(?<!\S){f}\s*(?={f})").search(form, pos)
        if m is None:
            alone = list(re.compile(rf"(?<!\S){f}\s+").finditer(form, pos))
            m = alone[0] if len(alone) == 1 else None
        if m is None:
            continue
        form = form[:m.start()] + form[m.end():]
        pos = m.start()
        if counts is not None:
            counts["repeated_fragment"] += 1
    return form


def clean_utterance(text: str, *, placeholders: dict[str, str] | None = None, guessed: str = "keep",
                    incomplete: str = "drop", fillers: bool = True, counts: Counter | None = None) -> str:
    text = _EVENT.sub(" ", text)

    def paren(m: re.Match) -> str:
        inner = m.group(1)
        if _INAUDIBLE.match(inner) or guessed == "drop":
            return " "
        return inner

    text = _DOUBLE_PAREN.sub(paren, text)
    text = _INCOMPLETE.sub(" " if incomplete == "drop" else r"\1", text)
    if "x" in text:
        text, n = _INAUDIBLE_X.subn(" ", text)
        if n and counts is not None:
            counts["inaudible_x"] += n
    if fillers:
        text = _FILLER.sub(" ", text)
    text = _TILDE.sub("", text)
    text = replace_pseudonyms(text, placeholders, counts)
    return _SPACES.sub(" ", text).strip()


# -- the same rules over a whole column (polars), for the sources' columnar fast path ---------------------------
# polars' regex engine has no look-around, so only what it can do exactly runs vectorised: event tags, fillers and
# '~' (the look-behind of _FILLER is emulated: every run of '~' becomes exactly '~~', a filler match consumes the
# character before it and one '~', and the second '~' stays free to stand before the next filler), inaudible x and
# de-identification tokens (below), space runs and stripping. A value the other rules could touch (ASCII letters,
# '&' or '-' outside a token or an x run: unknown tokens, incomplete words; '((' ; control characters, whose
# whitespace class differs between the engines) is cleaned by ``clean_utterance`` instead.
# tests/sources/test_nikl_dialogue.py checks both give the same text and counts on every sample utterance, the edge
# cases and random strings of tokens, x runs and markup.
#
# Tokens: `&name1&` anywhere, and `name1` / `name` where the character before is not [A-Za-z0-9&-] (or none) and
# the one after is not [A-Za-z0-9&-] (or none). There the regex rule's look-behind and look-ahead hold, so one
# left-to-right pass that consumes the character before finds the same tokens as ``replace_pseudonyms``. A value
# with a token the pass cannot decide that way (a digit or letter before it, '&', '-' or a letter after it) keeps
# ASCII letters or '&' once the tokens are taken out, and so goes to ``clean_utterance``.
NEEDS_PYTHON = r"\(\(|[A-Za-z&\-]|[\x00-\x1f\x7f-\x9f]"
# Inaudible x: a run of 'x' with no other ASCII letter or digit beside it is what _INAUDIBLE_X removes (two or more:
# its first branch; one after a syllable: the second; one alone: the third), so one pass that consumes the
# character before replaces the same runs. It leaves a run with a letter or digit before it (the letter or x left
# sends the value to ``clean_utterance``); a run with one after it, or a single x before a syllable but not after
# one, is _X_UNDECIDED and sends it there too.
_X_RUN = r"(^|[^A-Za-z0-9])x+"
_X_UNDECIDED = r"x[A-Za-wyz0-9]|(?:^|[^가-힣x])x[가-힣]"
_MARK, _END = "\x02", "\x03"  # control characters: a value holding one is cleaned by the regex rules


def _vector_tokens(table: dict[str, str]) -> bool:
    """Whether the fast path can replace this table's tokens: ASCII kinds without 'x' (the inaudible-x rule runs
    before the tokens are replaced), and values without a number ("{n}") or '&' (the unknown-token rule runs after)."""
    return (all(re.fullmatch(r"[A-Za-z_-]+", k) and "x" not in k for k in table)
            and not any("{n}" in v or "&" in v for v in table.values()))


def only_where(s, pattern, expr):
    """``expr`` (over a column named like the polars Series ``s``) applied to the values matching ``pattern`` (a
    regex, or a boolean Series) only: a rewrite of every value copies the whole column, most values need none."""
    mask = (s.str.contains(pattern) if isinstance(pattern, str) else pattern).fill_null(False)
    if not mask.any():
        return s
    changed = s.filter(mask).to_frame().select(expr.alias(s.name)).to_series()
    return s.clone().scatter(mask.arg_true(), changed)


def clean_column(values, placeholders: dict[str, str] | None = None):
    """(cleaned text, needs-Python mask, counts) for a polars string Series: where the mask is true the cleaned
    text and the counts are not valid, and the value must go through ``clean_utterance``. ``counts`` holds per
    value what ``clean_utterance`` counts (``pseudonym``, ``inaudible_x``). The token and x passes run only over
    the values that have something for them (their patterns are long alternations)."""
    import polars as pl

    table = DEFAULT_PLACEHOLDERS if placeholders is None else {**DEFAULT_PLACEHOLDERS, **placeholders}
    col = pl.col(values.name)
    # (Series.scatter changes the Series it is called on: every one scattered into here is this function's own)
    counts = {kind: pl.zeros(len(values), pl.UInt32, eager=True) for kind in ("pseudonym", "inaudible_x")}
    text = only_where(values, r"\{", col.str.replace_all(r"\{[^{}]*\}", " ")).clone()
    ascii_kinds = not (placeholders and any(not re.fullmatch(r"[A-Za-z_-]+", k) for k in placeholders))
    vector = ascii_kinds and _vector_tokens(table)
    undecided_x = pl.repeat(False, len(values), eager=True)
    if vector:  # inaudible x, before fillers and '~' as in clean_utterance
        has = text.str.contains("x", literal=True).arg_true()
        if len(has):
            bad = text.gather(has).str.contains(_X_UNDECIDED)
            undecided_x = undecided_x.scatter(has.filter(bad), True)
            ok = has.filter(~bad)
            runs = text.gather(ok)
            counts["inaudible_x"].scatter(ok, runs.str.count_matches(_X_RUN))
            text = text.scatter(ok, runs.str.replace_all(_X_RUN, "${1} "))
    text = only_where(text, "~", col.str.replace_all("~+", "~~")
                      .str.replace_all(f"(^|[^가-힣])(?:{FILLER_SYLLABLES})~", "${1} ")
                      .str.replace_all("~", "", literal=True))
    if not ascii_kinds:
        needs = pl.repeat(True, len(values), eager=True)  # a kind that is not ASCII letters could match anywhere
    else:
        needs = text.str.contains(NEEDS_PYTHON)  # one scan of every value; the token pass only over a few
    if vector:
        odd = (needs & ~undecided_x).arg_true()
        rest = text.gather(odd)
        # the values the token pass can take: with an ASCII letter or '&', no '((' nor control character
        take = odd.filter(rest.str.contains("[A-Za-z&]") & ~rest.str.contains(r"\(\(|[\x00-\x1f\x7f-\x9f]"))
        if len(take):
            kinds, bare = _alternations(table)
            edge = "[^A-Za-z0-9&-]"
            token = rf"&({kinds})\d*&|(^|{edge})({kinds})\d+|(^|{edge})({bare})"
            undecided = rf"(?:^|{edge})(?:(?:{kinds})\d+|(?:{bare}))[A-Za-z&-]"
            sub = text.gather(take)
            marked = sub.str.replace_all(token, f"${{2}}${{4}}{_MARK}${{1}}${{3}}${{5}}{_END}")
            left = (sub.str.contains(undecided)
                    | marked.str.replace_all(f"{_MARK}[^{_END}]*{_END}", "").str.contains(r"[A-Za-z&\-]"))
            needs = needs.scatter(take, left)
            counts["pseudonym"].scatter(take, marked.str.count_matches(_MARK, literal=True))
            text = text.scatter(take, marked.str.replace_many([f"{_MARK}{k}{_END}" for k in table],
                                                              list(table.values())))
    # a space run, or a value stripping would change (a regex for `^\s|\s$` scans at a third of the speed)
    spaces = text.str.contains(_SPACES.pattern) | (text.str.strip_chars().str.len_bytes() != text.str.len_bytes())
    text = only_where(text, spaces, col.str.replace_all(_SPACES.pattern, " ").str.strip_chars())
    return text, needs, counts
