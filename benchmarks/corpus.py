"""Synthetic corpora in the real on-disk formats, for benchmarks: NIKL daily-conversation files and AIHub talksets.

    python benchmarks/corpus.py nikl  /tmp/nikl-100k 100000
    python benchmarks/corpus.py aihub /tmp/aihub-10k 10000

NIKL files look like the 2021 release (one pretty-printed JSON object per file, one dialogue per document,
speaker metadata, utterances with ``form``/``original_form``/``speaker_id``/``start``/``end``/``note``), about
9 KB and 25 utterances each. Utterances are drawn from the team's sample dialogues (data/samples/nikl_dialogues.txt,
written by us: not corpus text), so they carry the real markup at about the real rate: fillers (``음~``), events
(``{laughing}``), pseudonyms (``&name1&``, bare ``name1`` in ``form``), guessed and inaudible transcriptions,
incomplete words, overlaps; a random tail of words makes most pairs distinct. Output is deterministic for a seed.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data" / "samples"))

from make_samples import SPEAKERS, read_dialogues  # noqa: E402

TOPICS = ["여행지(국내/해외) > 국내 여행", "반려동물 > 강아지", "먹거리 > 맛집", "가족 > 부모님", "계절/날씨 > 여름",
          "건강/다이어트 > 운동", "꿈(목표) > 진로", "스포츠/레저 > 야구", "회사/학교 > 회사 생활", "선물 > 생일 선물",
          "영화 > 최근 본 영화", "방송/연예 > 예능", "아르바이트 > 편의점", "연애/결혼 > 결혼식", "성격 > 장단점",
          "음악 > 콘서트", "휴가 > 여름휴가", "취직 > 면접", "경제/재테크 > 주식", "관혼상제 > 장례식", "쇼핑 > 옷",
          "우정 > 오랜 친구", "대중교통 > 지하철", "게임 > 모바일 게임", "교육 > 자녀 교육"]
TAIL = ["그래서", "진짜", "오늘", "내일", "주말에", "같이", "한번", "다시", "요즘", "아마", "정말", "조금", "많이",
        "생각해 봐야겠다", "해 보자", "좋을 것 같아", "알겠어", "그렇구나", "맞아", "괜찮아", "어때", "재밌겠다",
        "부산", "서울", "제주", "친구랑", "회사에서", "학교에서", "집에서", "카페에서", "지하철에서", "저녁에"]


def _pool() -> list[dict]:
    return [u for d in read_dialogues() for u in d["utt"]]


def nikl_file(rng: random.Random, pool: list[dict], n: int, year: str = "2021") -> dict:
    doc_id = f"SDRW{year[2:]}{n:08d}"
    sids = [f"SD{year[2:]}{(n * 2 + k) % 100000:05d}" for k in range(2)]
    speakers = []
    for i, sid in enumerate(sids):
        age, job, sex = SPEAKERS[(n + i) % len(SPEAKERS)]
        speakers.append({"id": sid, "age": age, "occupation": job, "sex": sex, "birthplace": "서울특별시",
                         "principal_residence": "서울특별시", "current_residence": "경기도", "education": "대학교 재학 이상"})
    utterances, t, who = [], 3.25, 0
    for k in range(rng.randint(18, 32)):
        u = rng.choice(pool)
        tail = " ".join(rng.sample(TAIL, rng.randint(0, 3)))
        original = f"{u['original']} {tail}".strip() if tail else u["original"]
        form = f"{u['form']} {tail}".strip() if tail else u["form"]
        if rng.random() < 0.03:  # a fully inaudible stretch: empty form
            original, form = "(())", ""
        end = t + 0.18 * len(original) + 0.6
        utterances.append({"id": f"{doc_id}.1.1.{k + 1}", "form": form, "original_form": original,
                           "speaker_id": sids[who], "start": f"{t:.4f}", "end": f"{end:.4f}",
                           "note": "발화겹침" if u["overlap"] else ""})
        t = end + 0.4
        if rng.random() < 0.7:  # the other speaker answers; otherwise one speaker goes on
            who = 1 - who
    return {
        "id": doc_id,
        "metadata": {"title": f"국립국어원 일상 대화 말뭉치 {doc_id} (SYNTHETIC benchmark file; not corpus data)",
                     "creator": "datafactory benchmark", "distributor": "datafactory benchmark", "year": year,
                     "category": "일상 대화 > 2인 대화", "annotation_level": ["원시"], "sampling": "SYNTHETIC"},
        "document": [{
            "id": f"{doc_id}.1",
            "metadata": {"title": "2인 일상 대화", "author": "대화 참여자", "publisher": "datafactory benchmark",
                         "date": f"{year}0{1 + n % 9}1{n % 9}", "topic": rng.choice(TOPICS), "speaker": speakers,
                         "setting": {"relation": rng.choice(["친구", "가족", "직장 동료", "연인"])}},
            "utterance": utterances,
        }],
    }


def make_nikl(out: Path, n_files: int, seed: int = 0) -> Path:
    """``n_files`` SDRW files under ``out/NIKL_DIALOGUE_2021_v1.0/`` (kept if already complete)."""
    folder = out / "NIKL_DIALOGUE_2021_v1.0"
    done = folder / ".complete"
    if done.exists() and done.read_text() == f"{n_files} {seed}":
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng, pool = random.Random(seed), _pool()
    for n in range(n_files):
        obj = nikl_file(rng, pool, 100_000_000 + n)
        (folder / f"{obj['id']}.json").write_text(json.dumps(obj, ensure_ascii=False, indent=4) + "\n", "utf-8")
    done.write_text(f"{n_files} {seed}")
    return folder


def make_aihub(out: Path, n_talksets: int, seed: int = 0, per_file: int = 1000) -> Path:
    """AIHub 텍스트 윤리검증 talksets (JSON arrays of dialogues with labelled sentences), ``per_file`` per file."""
    rng = random.Random(seed)
    pool = _pool()
    types = [["IMMORAL_NONE"]] * 6 + [["CENSURE"], ["HATE"], ["ABUSE"], ["DISCRIMINATION"], ["CRIME"]]
    folder = out / "147.텍스트 윤리검증 데이터" / "01.데이터" / "1.Training" / "라벨링데이터" / "aihub"
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(0, n_talksets, per_file):
        talks = []
        for i in range(f, min(f + per_file, n_talksets)):
            sentences = []
            for s in range(rng.randint(2, 6)):
                text = rng.choice(pool)["form"] + " " + " ".join(rng.sample(TAIL, 2))
                t = rng.choice(types)
                bad = t != ["IMMORAL_NONE"]
                sentences.append({"id": i * 10 + s, "speaker": 1 + s % 2, "origin_text": text, "text": text, "types": t,
                                  "is_immoral": bad, "intensity": round(rng.uniform(1, 3), 1) if bad else 0.0,
                                  "intensity_sum": rng.randint(3, 9) if bad else 0, "votes": None, "frame_id": 0,
                                  "mapped_slots": []})
            talks.append({"id": i, "sentences": sentences})
        name = f"talksets-train-{f // per_file + 1}"
        (folder / name).mkdir(exist_ok=True)
        (folder / name / f"{name}_aihub.json").write_text(json.dumps(talks, ensure_ascii=False), "utf-8")
    return folder


if __name__ == "__main__":
    kind, out, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    print((make_nikl if kind == "nikl" else make_aihub)(out, n))
