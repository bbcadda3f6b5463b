"""near_dedup (MinHash LSH) and the stable hashes that decide splits and samples."""
from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
import xxhash
from pydantic import ValidationError

from datafactory.hashing import unit_hash_expr, unit_hashes
from datafactory.steps.near_dedup import candidate_pairs, clusters, optimal_bands, signatures
from tests.steps.test_steps import frame, run

BASE = ["오늘 회사 근처에서 친구랑 점심으로 국밥을 먹었는데 생각보다 맛있었어",
        "주말에 부산으로 여행 가려고 기차표를 예매했는데 자리가 거의 없더라",
        "요즘 운동을 시작해서 아침마다 한 시간씩 공원을 걷고 있어요",
        "강아지가 겁이 많아서 산책할 때마다 자꾸 안아 달라고 해요",
        "다음 달에 이사를 가야 해서 집을 알아보는 중인데 너무 비싸요"]


def test_near_copies_are_dropped_and_the_kept_twin_recorded():
    rows = BASE + [BASE[0].replace("맛있었어", "맛있었어요"),  # a changed ending
                   BASE[1].replace(" ", ""),  # no spacing at all (Korean spacing varies)
                   "완전히 다른 문장입니다 여기에는 겹치는 말이 거의 없어요"]
    out, ctx = run("near_dedup", frame(q=rows), columns=["q"], threshold=0.7)
    assert out["id"].to_list() == ["s/0", "s/1", "s/2", "s/3", "s/4", "s/7"]
    assert ctx.dropped == {"near_duplicate": 2}
    table = ctx.tables["near_duplicates"].sort("id")
    assert table["id"].to_list() == ["s/5", "s/6"] and table["kept_id"].to_list() == ["s/0", "s/1"]
    assert (table["similarity"] >= 0.7).all() and ctx.info["near_dedup"]["dropped"] == 2
    # spacing counts when asked: the unspaced copy is then far from its original
    out, _ = run("near_dedup", frame(q=rows), columns=["q"], threshold=0.7, ignore_space=False)
    assert "s/6" in out["id"].to_list()


def test_threshold_decides_and_the_first_row_of_a_cluster_stays():
    a = BASE[2]
    b = a.replace("한 시간씩", "두 시간씩")
    c = b.replace("공원을", "강변을")
    df = frame(q=[c, b, a])  # c first: it is the one kept
    out, ctx = run("near_dedup", df, columns=["q"], threshold=0.6)
    assert out["id"].to_list() == ["s/0"] and set(ctx.tables["near_duplicates"]["kept_id"]) == {"s/0"}
    out, _ = run("near_dedup", df, columns=["q"], threshold=0.95)
    assert out.height == 3
    with pytest.raises(ValidationError):
        run("near_dedup", df, columns=["q"], threshold=1.5)
    with pytest.raises(ValidationError):
        run("near_dedup", df, columns=["q"], num_perm=32, bands=64)


def test_several_columns_nulls_and_tiny_frames():
    df = frame(q=["질문", "질문", None, None], a=["같은 답입니다 정말로", "같은 답입니다 정말로!", "", ""])
    out, ctx = run("near_dedup", df, columns=["q", "a"], threshold=0.7)
    assert out["id"].to_list() == ["s/0", "s/2"]
    one, _ = run("near_dedup", frame(q=["하나"]), columns=["q"])
    assert one.height == 1


def _jaccard(a: str, b: str, k: int = 3) -> float:
    a, b = a.replace(" ", ""), b.replace(" ", "")
    sa, sb = {a[i:i + k] for i in range(len(a) - k + 1)}, {b[i:i + k] for i in range(len(b) - k + 1)}
    return len(sa & sb) / len(sa | sb)


def test_planted_duplicates_are_found_with_high_precision_and_recall():
    rng = random.Random(5)
    syll = [chr(c) for c in range(0xAC00, 0xAC00 + 400)]
    base = ["".join(rng.choice(syll) + (" " if rng.random() < 0.25 else "") for _ in range(rng.randint(30, 80)))
            for _ in range(400)]
    planted = []
    for i in range(0, 400, 2):  # near copies: 1 to 4 syllables changed, so some fall below the threshold
        s = list(base[i])
        for _ in range(rng.randint(1, 4)):
            s[rng.randrange(len(s))] = rng.choice(syll)
        planted.append((i, "".join(s)))
    df = frame(q=base + [p for _, p in planted])
    out, ctx = run("near_dedup", df, columns=["q"], threshold=0.7)
    table = ctx.tables["near_duplicates"]
    dropped = dict(zip(table["id"], table["kept_id"]))
    sim = {f"s/{400 + k}": _jaccard(base[i], p) for k, (i, p) in enumerate(planted)}
    clear = [r for r, j in sim.items() if j >= 0.8]  # well above the threshold: must be found
    assert len(clear) > 40 and sum(r in dropped for r in clear) / len(clear) >= 0.97
    far = [r for r, j in sim.items() if j < 0.6]  # well below: must stay
    assert len(far) > 10 and sum(r in dropped for r in far) / len(far) <= 0.05
    assert all(r in sim for r in dropped)  # the base texts are unrelated: nothing else is dropped
    assert all(dropped[f"s/{400 + k}"] == f"s/{i}" for k, (i, _) in enumerate(planted) if f"s/{400 + k}" in dropped)


def test_signatures_are_the_same_everywhere():
    """Fixed coefficients and XXH3: the same text has the same signature on any machine (a regression check
    of the values themselves: a change here changes which rows every recipe drops)."""
    texts = pl.Series(["안녕하세요 반갑습니다", "", "ab"])
    sig = signatures(texts, 3, 16)
    assert sig.dtype == np.uint32 and sig.shape == (3, 16)
    assert (signatures(texts, 3, 16, block_rows=1, tile_rows=1) == sig).all()
    h = np.uint64(xxhash.xxh3_64_intdigest("ab".encode()))  # "ab" is shorter than a shingle: one shingle
    from datafactory.steps.near_dedup import _coefficients

    a, b = _coefficients(16, "a"), _coefficients(16, "b")
    with np.errstate(over="ignore"):
        assert (sig[2] == ((h * a + b) >> np.uint64(32)).astype(np.uint32)).all()


def test_lsh_parts():
    assert optimal_bands(0.8, 128) == (9, 13) and optimal_bands(0.5, 64) == (14, 4)  # what datasketch picks
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 6, 7, 8]], dtype=np.uint32)
    assert candidate_pairs(sig, 2, 2).tolist() == [[0, 1], [0, 2]]
    assert clusters(5, np.array([3, 1]), np.array([4, 3])).tolist() == [0, 1, 2, 1, 1]


def test_row_ranks_are_xxh3_over_the_column():
    keys = ["daily/SDRW2000000001.1#0", "안녕", "", "x" * 300]
    got = pl.DataFrame({"k": keys}).select(unit_hash_expr("k", "7\x1esplit#0")).to_series().to_list()
    assert got == unit_hashes(keys, "7\x1esplit#0")  # polars-hash agrees with the xxhash reference
    assert got[0] == (xxhash.xxh3_64_intdigest(b"7\x1esplit#0\x1fdaily/SDRW2000000001.1#0") >> 11) / 2**53
    assert all(0 <= g < 1 for g in got)


def test_near_dedup_builds_in_a_new_data_folder(project):
    """A recipe whose only step is near_dedup, in a data folder that does not exist yet (its `.cache/steps/` was
    never made and the step's table could not be written: a traceback)."""
    from tests.conftest import qa_rows

    project.jsonl("qa.jsonl", qa_rows(30) + [{**r, "qid": r["qid"] + "b"} for r in qa_rows(5)])
    project.recipe("nd", {"sources": {"qa": {"kind": "files", "path": "inputs/qa.jsonl",
                                             "options": {"id": "qid", "fields": {"prompt": "question"}}}},
                          "steps": [{"near_dedup": {"columns": ["prompt"]}}], "output": {"format": "prompt"}})
    assert not project.data.exists()
    res = project.factory().build("nd")
    assert res.manifest["rows"] == 30 and (project.data / "nd" / res.version / "tables").is_dir()
