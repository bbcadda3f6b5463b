"""Writes tests/data/pii_labelled.jsonl: Korean sentences with the personal data in them labelled by kind, and hard
negatives (dates, times, prices, quantities, versions, ISBNs, product and order codes, random digit strings, NIKL
pseudonym tokens) that hold none. Every value is made up here: the numbers carry valid check digits where the real
ones do, and no line is copied from a corpus.

    python benchmarks/pii_set.py            # rewrites the file (deterministic: seed 0)

One JSON object per line: {"text": ..., "spans": [{"kind": ..., "text": ...}], "group": "positive"|"negative"}.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_labelled.jsonl"
NAMES = ["김민수", "이서연", "박지훈", "최유진", "정하늘", "강도윤", "윤지아", "장현우"]


def rrn(rnd, foreign=False) -> str:
    while True:
        y, m, d = rnd.randint(0, 99), rnd.randint(1, 12), rnd.randint(1, 28)
        g = rnd.choice("5678" if foreign else "1234")
        if g in "34" + "78" and y > 24:
            continue
        head = f"{y:02d}{m:02d}{d:02d}{g}" + "".join(rnd.choice("0123456789") for _ in range(5))
        s = sum(int(c) * w for c, w in zip(head, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)))
        check = ((13 if foreign else 11) - s % 11) % 10
        return f"{head[:6]}-{head[6:]}{check}"


def luhn_number(rnd, prefix: str, n: int) -> str:
    body = prefix + "".join(rnd.choice("0123456789") for _ in range(n - len(prefix) - 1))
    for c in "0123456789":
        digits, total, double = body + c, 0, False
        for d in reversed(digits):
            x = int(d) * (2 if double else 1)
            total += x - 9 if x > 9 else x
            double = not double
        if total % 10 == 0:
            return digits
    raise AssertionError


def brn(rnd) -> str:
    while True:
        d = "".join(rnd.choice("0123456789") for _ in range(9))
        s = sum(int(x) * w for x, w in zip(d, (1, 3, 7, 1, 3, 7, 1, 3, 5))) + int(d[8]) * 5 // 10
        d += str((10 - s % 10) % 10)
        if d[0] != "0":
            return f"{d[:3]}-{d[3:5]}-{d[5:]}"


def digits(rnd, n: int) -> str:
    return "".join(rnd.choice("0123456789") for _ in range(n))


def phone(rnd) -> str:
    a = rnd.choice(["010", "010", "010", "011", "016", "019"])
    mid, last = digits(rnd, 4 if a == "010" else rnd.choice([3, 4])), digits(rnd, 4)
    style = rnd.randrange(7)
    return [f"{a}-{mid}-{last}", f"{a} {mid} {last}", f"{a}{mid}{last}", f"{a}.{mid}.{last}",
            f"+82 {a[1:]}-{mid}-{last}", f"+82-{a[1:]}-{mid}-{last}", f"({a}) {mid}-{last}"][style]


def landline(rnd) -> str:
    area = rnd.choice(["02", "031", "032", "042", "051", "053", "062", "064", "070"])
    mid = digits(rnd, 3 if area == "02" and rnd.random() < 0.5 else 4)
    return rnd.choice([f"{area}-{mid}-{digits(rnd, 4)}", f"({area}) {mid}-{digits(rnd, 4)}", f"{area}.{mid}.{digits(rnd, 4)}",
                       f"+82-{area[1:]}-{mid}-{digits(rnd, 4)}"])


ROADS = [("서울특별시", "강남구", "테헤란로"), ("서울", "중구", "세종대로"), ("경기도 성남시", "분당구", "판교역로"),
         ("부산광역시", "해운대구", "해운대해변로"), ("대전광역시", "유성구", "대학로"), ("인천", "연수구", "컨벤시아대로"),
         ("광주광역시", "북구", "용봉로"), ("제주특별자치도 제주시", "", "첨단로"), ("경기 수원시", "영통구", "광교중앙로"),
         ("", "마포구", "월드컵북로"), ("", "송파구", "올림픽로")]
JIBUN = [("서울", "강남구", "역삼동"), ("서울특별시", "종로구", "관철동"), ("충남 아산시", "배방읍", "장재리"),
         ("경북 경주시", "", "황남동"), ("전남 순천시", "", "조례동"), ("", "관악구", "신림동"), ("대구", "수성구", "범어동")]
BANKS = ["국민은행", "신한은행", "우리은행", "하나은행", "농협", "카카오뱅크", "토스뱅크", "기업은행", "우체국"]


def positives(rnd) -> list[dict]:
    out = []

    def add(template: str, kind: str, value: str):
        out.append({"text": template.format(v=value, name=rnd.choice(NAMES)), "spans": [{"kind": kind, "text": value}],
                    "group": "positive"})

    for i in range(30):
        add(rnd.choice(["{name} 님의 주민등록번호는 {v}입니다.", "주민번호 {v} 확인 부탁드려요", "본인 확인용 {v} 보내드립니다.",
                        "{v} 이 번호로 조회해 주세요.", "회원 정보: {name}, {v}"]), "rrn", rrn(rnd))
    for i in range(20):
        add(rnd.choice(["외국인등록번호 {v}로 신청했어요.", "등록번호는 {v} 입니다", "{name}씨 외국인 번호 {v}"]), "frn",
            rrn(rnd, foreign=True))
    for i in range(40):
        add(rnd.choice(["제 번호는 {v}이에요.", "연락처 {v}로 문자 주세요", "{name} 휴대폰 {v}", "{v}로 전화 부탁드립니다.",
                        "급하면 {v} 번으로", "핸드폰번호:{v}"]), "phone", phone(rnd))
    for i in range(20):
        add(rnd.choice(["사무실 전화 {v}입니다.", "매장 번호는 {v}예요", "팩스 {v}로 보내 주세요"]), "phone", landline(rnd))
    for i in range(10):
        add(rnd.choice(["고객센터 {v}로 문의하세요.", "대표번호 {v}"]), "phone",
            f"{rnd.choice(['1588', '1577', '1544', '1661', '1600', '1899'])}-{digits(rnd, 4)}")
    for i in range(30):
        user = rnd.choice(["minsu.kim", "seoyeon99", "jh_park", "yujin+news", "haneul.jung", "dev.team"])
        dom = rnd.choice(["example.com", "naver.com", "gmail.com", "daum.net", "company.co.kr", "univ.ac.kr"])
        add(rnd.choice(["메일은 {v} 입니다.", "{v}로 보내 주세요", "이메일: {v}", "문의 {v}"]), "email", f"{user}@{dom}")
    for i in range(30):
        n = luhn_number(rnd, rnd.choice(["4", "5", "9410", "3"]), 16)
        value = rnd.choice([f"{n[:4]}-{n[4:8]}-{n[8:12]}-{n[12:]}", f"{n[:4]} {n[4:8]} {n[8:12]} {n[12:]}", n])
        add(rnd.choice(["카드번호 {v}로 결제했어요.", "결제 카드 {v}", "카드 {v} 분실 신고합니다"]), "card", value)
    for i in range(30):
        value = rnd.choice([f"{digits(rnd, 3)}-{digits(rnd, 3)}-{digits(rnd, 6)}", f"{digits(rnd, 4)}-{digits(rnd, 3)}-{digits(rnd, 6)}",
                            f"{digits(rnd, 6)}-{digits(rnd, 2)}-{digits(rnd, 6)}", digits(rnd, 12)])
        add(rnd.choice([f"{rnd.choice(BANKS)} {{v}}로 입금해 주세요.", "계좌번호 {v} (" + rnd.choice(BANKS) + ")",
                        f"{rnd.choice(BANKS)} 계좌 {{v}} 예금주 {{name}}", "입금 계좌: {v}"]), "account", value)
    for i in range(20):
        value = rnd.choice([f"M{digits(rnd, 8)}", f"M{digits(rnd, 3)}{rnd.choice('ABCDEFGHJK')}{digits(rnd, 4)}"])
        add(rnd.choice(["여권번호 {v}로 예약했습니다.", "여권 번호: {v}", "passport no. {v}"]), "passport", value)
    for i in range(20):
        region = rnd.choice(["11", "12", "13", "21", "28"])
        value = rnd.choice([f"{region}-{digits(rnd, 2)}-{digits(rnd, 6)}-{digits(rnd, 2)}",
                            f"서울 {digits(rnd, 2)}-{digits(rnd, 6)}-{digits(rnd, 2)}"])
        add(rnd.choice(["운전면허번호 {v}", "면허번호는 {v}입니다.", "운전면허 {v} 갱신"]), "driver", value)
    for i in range(20):
        add(rnd.choice(["사업자등록번호 {v}", "사업자번호: {v}", "(주)한빛 {v}"]), "brn", brn(rnd))
    for i in range(20):
        value = rnd.choice([f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
                            f"192.168.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}", "2001:db8:85a3::8a2e:370:7334",
                            f"fe80::{rnd.randint(1, 9999):x}:{rnd.randint(1, 9999):x}"])
        add(rnd.choice(["접속 IP는 {v}입니다.", "서버 {v}에서 오류", "로그에 {v} 기록이 있어요"]), "ip", value)
    for i in range(25):
        sido, gu, road = rnd.choice(ROADS)
        value = " ".join(x for x in (sido, gu, road) if x) + f" {rnd.randint(1, 400)}" + rnd.choice(["", f"-{rnd.randint(1, 30)}"])
        add(rnd.choice(["주소는 {v}입니다.", "{v}로 배송해 주세요", "{v}, 3층 사무실"]), "address", value)
    for i in range(15):
        sido, gu, dong = rnd.choice(JIBUN)
        value = " ".join(x for x in (sido, gu, dong) if x) + f" {rnd.randint(1, 999)}" + rnd.choice(["", f"-{rnd.randint(1, 40)}", "번지"])
        add(rnd.choice(["{v}에 살아요.", "우편물은 {v}로", "주소: {v}"]), "address", value)
    # two kinds in one sentence
    for i in range(10):
        p, e = phone(rnd), f"user{i}@example.com"
        out.append({"text": f"{rnd.choice(NAMES)}: {p}, {e}", "spans": [{"kind": "phone", "text": p}, {"kind": "email", "text": e}],
                    "group": "positive"})
    return out


def negatives(rnd) -> list[str]:
    out = []
    for i in range(300):
        y, m, d = rnd.randint(1990, 2030), rnd.randint(1, 12), rnd.randint(1, 28)
        k = i % 30
        out.append([
            f"{y}-{m:02d}-{d:02d} {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}에 회의가 있어요.",
            f"{y}.{m:02d}.{d:02d}까지 제출해 주세요.",
            f"가격은 {rnd.randint(1, 999):,},{rnd.randint(0, 999):03d}원이고 수량은 {rnd.randint(1, 5000):,}개입니다.",
            f"버전 {rnd.randint(1, 9)}.{rnd.randint(0, 20)}.{rnd.randint(0, 30)}.{rnd.randint(0, 99)} 배포 완료",
            f"v{rnd.randint(1, 9)}.{rnd.randint(0, 9)}.{rnd.randint(0, 9)} 릴리스 노트를 확인하세요.",
            f"ISBN 978-89-{rnd.randint(1000, 9999)}-{rnd.randint(100, 999)}-{rnd.randint(0, 9)}",
            f"상품 코드 AB-{digits(rnd, 4)}-{digits(rnd, 4)} 재고 있음",
            f"주문번호 {y}{m:02d}{d:02d}{digits(rnd, 8)} 배송 시작",
            f"일련번호 {digits(rnd, 13)}번 제품입니다.",
            f"{rnd.randint(1500, 1899)}-{rnd.randint(1500, 1999)}년대 유럽의 역사",
            f"&name&이 &address&에서 &tel-num&으로 연락했대요.",
            f"○○이는 ○○동에 살아요. 어제 ○○랑 만났어.",
            f"{rnd.randint(1, 12)}월 {rnd.randint(1, 28)}일 오후 {rnd.randint(1, 11)}시 {rnd.randint(0, 59)}분에 봐요.",
            f"강남구 역삼동 {rnd.randint(1, 9)}번 출구에서 만나요.",
            f"친구 집으로 {rnd.randint(2, 30)}분 걸려요.",
            f"지하철 {rnd.randint(1, 9)}호선 {rnd.randint(2, 12)}정거장",
            f"체중 {rnd.randint(40, 99)}.{rnd.randint(0, 9)}kg, 키 {rnd.randint(150, 190)}cm",
            f"점수는 {rnd.randint(0, 100)}점 만점에 {rnd.randint(0, 100)}점이었어요.",
            f"좌표 {rnd.randint(33, 38)}.{digits(rnd, 4)}, {rnd.randint(124, 131)}.{digits(rnd, 4)}",
            f"파일 크기 {rnd.randint(1, 999)}.{rnd.randint(0, 99)}MB, 해상도 {rnd.choice(['1920x1080', '3840x2160'])}",
            f"전화 온 건 {rnd.randint(2, 9)}시 {rnd.randint(10, 59)}분이었어요.",
            f"{rnd.randint(1000, 9999)}-{rnd.randint(1000, 9999)} 시즌 리그 결과",
            f"법률 제{digits(rnd, 5)}호, {y}. {m}. {d}. 시행",
            f"학번 {y}{digits(rnd, 5)}, 수강 과목 {rnd.randint(3, 7)}개",
            f"모델명 SM-{rnd.choice('GSAN')}{digits(rnd, 3)}N 정품",
            f"비율은 {rnd.randint(1, 99)}:{rnd.randint(1, 99)}이고 증가율 {rnd.randint(1, 99)}.{rnd.randint(0, 9)}%",
            f"인구 {rnd.randint(1, 999):,},{digits(rnd, 3)},{digits(rnd, 3)}명",
            f"서울에서 부산까지 {rnd.randint(300, 450)}km, 고속도로로 {rnd.randint(3, 6)}시간",
            f"대도시 방향으로 {rnd.randint(2, 9)}차선 도로가 막혀요.",
            f"계좌 이체는 {rnd.randint(1, 9)}월 {rnd.randint(1, 28)}일에 {rnd.randint(1, 99):,}만 원 했어요.",
        ][k])
    return out


def main() -> None:
    rnd = random.Random(0)
    rows = positives(rnd) + [{"text": t, "spans": [], "group": "negative"} for t in negatives(rnd)]
    for r in rows:
        assert all(s["text"] in r["text"] for s in r["spans"]), r
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    pos = sum(r["group"] == "positive" for r in rows)
    print(f"{OUT}: {pos} positive and {len(rows) - pos} negative sentences")


if __name__ == "__main__":
    main()
