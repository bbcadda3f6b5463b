"""Korean and general personal data in text: find it, validate it where a number carries its own check, mask it.

Kinds (the placeholder each is masked with):

- ``rrn`` 주민등록번호 and ``frn`` 외국인등록번호 (``<주민등록번호>``, ``<외국인등록번호>``): ``YYMMDD-GNNNNNN`` (or 13 digits in
  a row) with a real birth date and the gender/century digit (1-4 and 9/0: citizens; 5-8: foreigners), and the
  check digit; numbers issued since October 2020 carry no check digit, so a hyphenated number with a real birth date
  and the word 주민(등록)/외국인 just before it counts too. A masked tail (``900101-1******``) is one as well.
- ``phone`` 전화번호: mobile (010, 011, 016-019) and landline (02, 031-064, 070) numbers with any of ``-``, ``.``,
  spaces, brackets or nothing between the groups, ``+82`` or ``82`` in front; the 15xx/16xx/18xx business numbers
  (``1588-1234``) too, unless ``keep_business_numbers``.
- ``email`` 이메일; ``card`` 카드번호 (13-19 digits in groups, Luhn's check); ``account`` 계좌번호 (digits in hyphenated
  groups or 10-14 in a row, with a bank's name or 계좌/입금/송금 in the 20 characters before); ``passport`` 여권번호
  (M/S/R/G/D + 8 digits, or the 2021 format M123A4567, after 여권/passport); ``driver`` 운전면허번호 (region code or
  name, then NN-NNNNNN-NN); ``brn`` 사업자등록번호 (NNN-NN-NNNNN with its check digit); ``ip`` IP주소 (IPv4 octets up
  to 255, not after v/버전/version; IPv6); ``address`` 주소 (도로명: 시/도 + 시/군/구 + ...로/길 + number; 지번: 시/군/구 +
  동/리/가 + number, 번지).

Not masked: dates, times, prices, quantities, version strings, ISBNs, product and order codes, and the NIKL corpus's
pseudonym tokens (``&name&``, ``○○``). A span is kept whole: the longest, earliest match wins where kinds overlap.
Everything here is the standard library's ``re``; ``benchmarks/bench_pii.py`` measures it and the libraries
that exist (ko-pii, koredact, ko-pii-guard) on ``tests/data/pii_labelled.jsonl``.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import date

PLACEHOLDER = {"rrn": "<주민등록번호>", "frn": "<외국인등록번호>", "phone": "<전화번호>", "email": "<이메일>",
               "card": "<카드번호>", "account": "<계좌번호>", "passport": "<여권번호>", "driver": "<운전면허번호>",
               "brn": "<사업자등록번호>", "ip": "<IP주소>", "address": "<주소>"}
KINDS = tuple(PLACEHOLDER)

_NB = r"(?<![0-9A-Za-z])"  # not inside a longer code (Hangul may touch: 번호는010-...)
_NA = r"(?![0-9A-Za-z])"
_SEP = r"[-.\s]?"

RRN = re.compile(_NB + r"(\d{2})(\d{2})(\d{2})\s?([-–]?)\s?([0-9])(\d{6}|[*Xx]{6})" + _NA)
PHONE = re.compile(
    _NB + r"(?:\+?82[-.\s]?\(?0?\)?|\(?0)"  # +82 10..., 82-10..., (010) or 010
    r"(1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)\)?[-.\s]?(\d{3,4})[-.\s]?(\d{4})" + _NA)
BUSINESS = re.compile(_NB + r"(1(?:5[4-9]\d|6\d\d|8\d\d))[-.\s]?(\d{4})" + _NA + r"(?!\s*(?:년|년대|~|까지))")
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
                   r"(?![A-Za-z0-9-])")  # Hangul may touch it: kim@example.com로
CARD = re.compile(_NB + r"(?:\d{4}[- ]\d{4}[- ]\d{4}[- ]\d{1,7}|\d{4}[- ]\d{6}[- ]\d{5}|(\d{15,16}))" + _NA)
BANKS = ("국민", "KB", "신한", "우리", "하나", "농협", "NH", "기업", "IBK", "SC제일", "제일", "씨티", "카카오뱅크", "카카오",
         "케이뱅크", "토스뱅크", "토스", "새마을", "우체국", "수협", "신협", "대구은행", "부산은행", "경남은행", "광주은행",
         "전북은행", "제주은행", "산업은행", "iM뱅크", "은행", "계좌", "입금", "송금", "이체", "account")
ACCOUNT = re.compile(_NB + r"(?:\d{2,6}(?:[- ]\d{2,7}){1,4}|\d{10,14})" + _NA)
PASSPORT = re.compile(_NB + r"(?:[MSRGD]\d{8}|M\d{3}[A-Z]\d{4})" + _NA)
REGIONS = "서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산"
DRIVER = re.compile(r"(?:(?:" + REGIONS + r")\s?|" + _NB + r"(?:1[1-9]|2[0-8])[- ])\d{2}[- ]\d{6}[- ]\d{2}" + _NA)
BRN = re.compile(_NB + r"(\d{3})-(\d{2})-(\d{5})" + _NA)
IPV4 = re.compile(r"(?<![0-9A-Za-z.])((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})"
                  r"(?![0-9A-Za-z]|\.\d)")
IPV6 = re.compile(r"(?<![0-9A-Za-z:])(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|"
                  r"(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}:){0,5}[0-9a-fA-F]{1,4}|::1)(?![0-9A-Za-z:])")
SIDO = (r"(?:서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|전북|전남|경북|경남|제주|충청북|충청남|전라북|"
        r"전라남|경상북|경상남)(?:특별시|광역시|특별자치시|특별자치도|도|시)?")
SIGUNGU = r"(?<![가-힣])[가-힣]{1,5}(?:시|군|구)"
NOT_SIGUNGU = {"친구", "입구", "출구", "연구", "요구", "가구", "지구", "전구", "도구", "기구", "항구", "창구", "탐구", "추구",
               "비상구", "하수구", "배수구", "국군", "장군", "아군", "적군", "도시", "대도시", "당시", "동시", "역시", "즉시",
               "수시", "임시", "항시", "평시", "표시", "지시", "무시", "감시", "게시", "제시", "개시", "일시", "잠시"}
_TAIL = r"(?!\d|\s*(?:번(?!지)|호선|년|월|일|시간|분|명|개|원|층\s*건물|km|m\b))"
ROAD = re.compile(r"(?:" + SIDO + r"\s+)?(?:" + SIGUNGU + r"\s+){1,2}(?:[가-힣]{1,5}(?:읍|면)\s+)?[가-힣0-9]{1,12}(?:로|길)"
                  r"\s*\d{1,4}(?:-\d{1,4})?(?:번?길\s*\d{1,4}(?:-\d{1,4})?)?" + _TAIL)
JIBUN = re.compile(r"(?:" + SIDO + r"\s+)?(?:" + SIGUNGU + r"\s+){1,2}(?:[가-힣]{1,5}(?:읍|면)\s+)?[가-힣0-9]{1,8}(?:동|리|가)"
                   r"\s+(?:산\s?)?\d{1,4}(?:-\d{1,4})?(?:\s?번지)?" + _TAIL)
_VERSION_BEFORE = re.compile(r"(?:[vV]|버전\s*|version\s*|ver\.?\s*)$")
_HAS = re.compile(r"[0-9@:]")
_PASSPORT_WORD = re.compile(r"여권|passport|Passport|PASSPORT")
_ADDRESS_HINT = re.compile(r"[로길동리가]\s*(?:산\s?)?\d")


def _birth_date(yy: str, mm: str, dd: str, g: str) -> bool:
    century = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000,
               "9": 1800, "0": 1800}[g]
    try:
        date(century + int(yy), int(mm), int(dd))
        return True
    except ValueError:
        return False


def _rrn_check(digits: str, foreign: bool) -> bool:
    s = sum(int(d) * w for d, w in zip(digits[:12], (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)))
    return (((13 if foreign else 11) - s % 11) % 10) == int(digits[12])


def _luhn(digits: str) -> bool:
    total, double = 0, False
    for d in reversed(digits):
        n = int(d) * (2 if double else 1)
        total += n - 9 if n > 9 else n
        double = not double
    return total % 10 == 0


def _brn_check(d: str) -> bool:
    s = sum(int(x) * w for x, w in zip(d[:9], (1, 3, 7, 1, 3, 7, 1, 3, 5))) + int(d[8]) * 5 // 10
    return (10 - s % 10) % 10 == int(d[9])


def _before(text: str, start: int, n: int = 20) -> str:
    return text[max(0, start - n):start]


def find(text: str, kinds=KINDS, *, keep_business_numbers: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each piece of personal data in ``text``, in order, not overlapping."""
    if not text or not _HAS.search(text):
        return []
    want = set(kinds)
    found: list[tuple[int, int, str]] = []
    for m in RRN.finditer(text):
        yy, mm, dd, hyphen, g, rest = m.groups()
        if g not in "12345678" or not _birth_date(yy, mm, dd, g):
            continue
        foreign = g in "5678"
        kind = "frn" if foreign else "rrn"
        context = re.search(r"주민|등록번호|외국인|RRN", _before(text, m.start()))
        if rest.isdigit():
            digits = yy + mm + dd + g + rest
            if not (_rrn_check(digits, foreign) or (hyphen and context)):
                continue
        elif not (hyphen or context):
            continue
        if kind in want:
            found.append((m.start(), m.end(), kind))
    if "card" in want:
        for m in CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if m.group(1) and not re.search(r"카드|card|Card|결제", _before(text, m.start(), 20)):
                continue  # 15-16 digits in a row are an order number as often as a card: only where a card is named
            if 13 <= len(digits) <= 19 and _luhn(digits):
                found.append((m.start(), m.end(), "card"))
    if "phone" in want:
        for m in PHONE.finditer(text):
            area, mid, last = m.groups()
            if area.startswith("1") and len(mid) < 3:
                continue
            found.append((m.start(), m.end(), "phone"))
        if not keep_business_numbers:
            found += [(m.start(), m.end(), "phone") for m in BUSINESS.finditer(text)]
    if "email" in want and "@" in text:
        found += [(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
    if "driver" in want:
        found += [(m.start(), m.end(), "driver") for m in DRIVER.finditer(text)]
    if "brn" in want and "-" in text:
        for m in BRN.finditer(text):
            if _brn_check("".join(m.groups())):
                found.append((m.start(), m.end(), "brn"))
    if "passport" in want and _PASSPORT_WORD.search(text):
        for m in PASSPORT.finditer(text):
            if _PASSPORT_WORD.search(_before(text, m.start(), 25)):
                found.append((m.start(), m.end(), "passport"))
    if "ip" in want and ("." in text or ":" in text):
        for m in IPV4.finditer(text):
            if not _VERSION_BEFORE.search(_before(text, m.start(), 10)):
                found.append((m.start(), m.end(), "ip"))
        found += [(m.start(), m.end(), "ip") for m in IPV6.finditer(text)]
    if "address" in want and _ADDRESS_HINT.search(text):
        for m in (*ROAD.finditer(text), *JIBUN.finditer(text)):
            words = m.group().split()
            areas = [w for w in words[:-1] if w[-1] in "시군구도" and w not in NOT_SIGUNGU]
            road = next((w for w in words if w.endswith(("로", "길")) and not w.endswith("으로")), "")
            if m.re is ROAD and (not road or re.fullmatch(r"[가-힣]로", road)):
                continue
            if any(w in NOT_SIGUNGU for w in words[:2]) or not areas:
                continue
            found.append((m.start(), m.end(), "address"))
    if "account" in want:
        taken = _merge(found)
        for m in ACCOUNT.finditer(text):
            if any(s < m.end() and m.start() < e for s, e, _ in taken):
                continue
            if sum(c.isdigit() for c in m.group()) >= 8 and any(b in _before(text, m.start(), 20) for b in BANKS):
                found.append((m.start(), m.end(), "account"))
    return _merge(found)


def _merge(found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans: the earliest, then the longest, wins."""
    out: list[tuple[int, int, str]] = []
    for s, e, k in sorted(found, key=lambda x: (x[0], -(x[1] - x[0]))):
        if out and s < out[-1][1]:
            continue
        out.append((s, e, k))
    return out


def mask(text: str, kinds=KINDS, *, keep_business_numbers: bool = False) -> tuple[str, Counter]:
    """``text`` with each piece of personal data replaced by its kind's placeholder; the counts by kind."""
    spans = find(text, kinds, keep_business_numbers=keep_business_numbers)
    if not spans:
        return text, Counter()
    out, at = [], 0
    for s, e, k in spans:
        out += [text[at:s], PLACEHOLDER[k]]
        at = e
    out.append(text[at:])
    return "".join(out), Counter(k for _, _, k in spans)


def mask_value(value, kinds=KINDS, *, keep_business_numbers: bool = False):
    """Every string inside ``value`` (a JSON-like record: a quarantined line, a raw record) masked."""
    if isinstance(value, str):
        return mask(value, kinds, keep_business_numbers=keep_business_numbers)[0]
    if isinstance(value, list):
        return [mask_value(v, kinds, keep_business_numbers=keep_business_numbers) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v, kinds, keep_business_numbers=keep_business_numbers) for k, v in value.items()}
    return value
