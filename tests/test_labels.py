"""Human labels: the store (append-only, undo as a tombstone, one label per request), majority over annotators,
Cohen's kappa, label files, the page's HTTP routes and their guards, and labels applied by a rebuild of rm_v3."""
from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import urllib.request


import polars as pl
import pytest

from datafactory.engine import Factory
from datafactory.errors import DataFactoryError
from datafactory.label_server import LabelServer, LabelSession
from datafactory.labels import (LabelStore, cohen_kappa, export_rows, import_labels, pair_key, read_label_file,
                                resolve, stats)
from datafactory.store import Store
from tests.conftest import REPO


def pair(prompt="질문", a="답 가", b="답 나", **kw):
    return {"pair_key": pair_key(prompt, a, b), "prompt": prompt, "response_a": a, "response_b": b, **kw}


def label(store, who, decision, p=None, rid=None, dataset="d"):
    p = p or pair()
    rid = rid or f"{who}-{decision}-{p['pair_key'][:8]}-{len(store.live()) + store.counts().get('undo', 0)}"
    return store.add(request_id=rid, annotator=who, dataset=dataset, pair=p, decision=decision)


# -- the store ---------------------------------------------------------------------------------------------------
def test_labels_are_appended_undo_is_a_row_and_a_request_id_labels_once(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite3")
    seq, dup = store.add(request_id="r1", annotator="kim", dataset="d", pair=pair(), decision="a", seconds=2.5)
    assert (seq, dup) == (1, False)
    assert store.add(request_id="r1", annotator="kim", dataset="d", pair=pair(), decision="b") == (1, True)
    label(store, "kim", "tie", pair(prompt="둘째"))
    undone = store.undo(request_id="u1", annotator="kim", dataset="d")
    assert undone["prompt"] == "둘째"
    assert store.undo(request_id="u1", annotator="kim", dataset="d") is None  # the same undo sent twice: once
    assert [r["decision"] for r in store.live()] == ["a"]
    assert store.undo(request_id="u2", annotator="lee", dataset="d") is None  # lee has nothing to undo
    store.undo(request_id="u3", annotator="kim", dataset="d")
    assert store.live() == [] and store.counts() == {"label": 2, "undo": 2}  # nothing is deleted
    store.close()
    again = LabelStore(tmp_path / "labels.sqlite3")  # a fresh connection (a restarted page) sees the same
    assert again.counts() == {"label": 2, "undo": 2}
    with pytest.raises(ValueError, match="decision"):
        again.add(request_id="x", annotator="kim", dataset="d", pair=pair(), decision="left")


def test_majority_counts_the_latest_label_of_each_annotator_by_answer_text():
    p, flipped = pair(), pair(a="답 나", b="답 가")  # the same pair, the answers named the other way round
    rows = [{**p, "annotator": "kim", "decision": "a", "seq": 1},
            {**flipped, "annotator": "lee", "decision": "b", "seq": 2},  # also "답 가"
            {**p, "annotator": "park", "decision": "b", "seq": 3}]
    o = resolve(rows)[p["pair_key"]]
    assert o.outcome == "winner" and o.winner_is("답 가") and o.annotators == ["kim", "lee", "park"]
    rows.append({**p, "annotator": "lee", "decision": "b", "seq": 4})  # lee changes their mind: 1 - 2
    assert resolve(rows)[p["pair_key"]].winner_is("답 나")
    rows.append({**p, "annotator": "park", "decision": "skip", "seq": 5})  # a later skip withdraws park's vote
    assert resolve(rows)[p["pair_key"]].outcome == "no_majority"  # 1 - 1
    assert resolve([{**p, "annotator": "kim", "decision": "tie", "seq": 1}])[p["pair_key"]].outcome == "tie"
    assert resolve([{**p, "annotator": "kim", "decision": "skip", "seq": 1}]) == {}


def test_cohen_kappa_is_the_textbook_value():
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15 -> po 0.7, pe 0.5, kappa 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None and cohen_kappa([], []) is None
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)


def test_stats_kappa_judge_agreement_time_and_labels_whose_pair_is_gone():
    p1, p2, p3 = pair(prompt="1"), pair(prompt="2"), pair(prompt="3")
    rows = [{**p1, "annotator": "kim", "decision": "a", "seconds": 2.0, "source": "sft", "dataset": "d", "seq": 1},
            {**p1, "annotator": "lee", "decision": "a", "seconds": 4.0, "source": "sft", "dataset": "d", "seq": 2},
            {**p2, "annotator": "kim", "decision": "b", "seconds": 6.0, "source": "sft", "dataset": "d", "seq": 3},
            {**p2, "annotator": "lee", "decision": "a", "seconds": 8.0, "source": "sft", "dataset": "d", "seq": 4},
            {**p3, "annotator": "kim", "decision": "a", "source": "sft", "dataset": "d", "version": "old", "seq": 5}]
    pairs = pl.DataFrame([{**p1, "id": "1", "source": "sft", "judge": "a", "decided_by": "judge"},
                          {**p2, "id": "2", "source": "sft", "judge": "b", "decided_by": "judge"}])
    s = stats(rows, pairs, "d")
    assert s["per_source"] == {"sft": {"kim": 3, "lee": 2}}
    k = s["kappa"][0]
    assert k["annotators"] == ["kim", "lee"] and k["pairs"] == 2 and k["agreement"] == 0.5
    # p1: people a, judge a (agree); p2 is no majority (kim b, lee a): not compared
    assert s["judge_agreement"] == {"sft": {"compared": 1, "agree": 1, "rate": 1.0}}
    assert s["seconds"]["kim"] == {"labels": 2, "median": 4.0, "mean": 4.0}
    assert s["unmatched"] == {"labels": 1, "by_version": {"old": 1}}


def test_label_files_import_once_export_and_name_a_bad_line(tmp_path):
    f = tmp_path / "labels.jsonl"
    f.write_text(json.dumps({"prompt": "질문", "response_a": "답 가", "response_b": "답 나", "winner": "b"},
                            ensure_ascii=False) + "\n\n" +
                 json.dumps({"prompt": "질문2", "response_a": "x", "response_b": "y", "winner": "tie",
                             "annotator": "lee"}) + "\n", "utf-8")
    store = LabelStore(tmp_path / "l.sqlite3")
    rows = read_label_file(f, "kim", "rm_v3")
    assert import_labels(store, rows) == (2, 0)
    assert import_labels(store, read_label_file(f, "kim", "rm_v3")) == (0, 2)  # the same file again adds nothing
    out = export_rows(store.live())
    assert [(r["annotator"], r["winner"], r["dataset"]) for r in out] == [("kim", "b", "rm_v3"), ("lee", "tie", "rm_v3")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response_a": "a", "response_b": "b", "winner": "a"}\n'
                   '{"prompt": "p", "response_a": "a", "response_b": "b", "winner": "left"}\n', "utf-8")
    with pytest.raises(DataFactoryError, match=r"bad.jsonl, line 2: .*winner must be one of a, b, tie, both_bad"):
        read_label_file(bad)
    bad.write_text('{"prompt": "p", "response_a": "a"}\n', "utf-8")
    with pytest.raises(DataFactoryError, match=r"line 1: .*'response_b' is missing"):
        read_label_file(bad)
    bad.write_bytes("질문".encode("cp949"))
    with pytest.raises(DataFactoryError, match="not UTF-8"):
        read_label_file(bad)
    # a line separator (U+2028) or NEL (U+0085) inside an answer, written raw by ensure_ascii=False: one record
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"prompt": "질문\u2028둘째 줄", "response_a": "a\x85b", "response_b": "c", "winner": "a"},
                              ensure_ascii=False) + "\r\n", "utf-8")
    assert [r["prompt"] for r in read_label_file(odd, "kim")] == ["질문\u2028둘째 줄"]


# -- the page's routes, on a real rm_v3 build -------------------------------------------------------------------
@pytest.fixture
def rm(tmp_path):
    """rm_v3 built from the shipped samples into a fresh data folder: (data dir, Factory result)."""
    data = tmp_path / "data"
    res = Factory(data, REPO / "recipes").build("rm_v3")
    return data, res


@pytest.fixture
def server(rm):
    data, _ = rm
    store = Store(data)
    labels = LabelStore(store.labels)
    srv = LabelServer(LabelSession(store, "rm_v3", labels, annotator="kim"))
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    labels.close()


def call(srv, method, path, body=None, headers=None):
    host, port = srv.server_address[:2]
    c = http.client.HTTPConnection(host, port, timeout=10)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json"} if data is not None else {}
    c.request(method, path, body=data, headers={**h, **(headers or {})})
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw.decode()


def next_item(srv, who, queue="todo", sources=""):
    status, got = call(srv, "GET", f"/api/next?annotator={who}&queue={queue}&sources={sources}")
    assert status == 200, got
    return got


def send(srv, who, item, decision, **kw):
    return call(srv, "POST", "/api/label", {"annotator": who, "pair_key": item["pair_key"], "left_is": item["left_is"],
                                            "decision": decision, "request_id": item["request_id"], **kw})


def test_the_page_serves_every_candidate_pair_the_judge_dropped_ones_too(server, rm):
    _, res = rm
    got = next_item(server, "kim")
    total = got["progress"]["total"]
    kept = res.manifest["rows"]
    assert total == 18 and kept == 16  # the two pairs the judge dropped (a tie, both low) can be labelled
    assert got["progress"]["per_source"]["sft"]["total"] == 6
    item = got["item"]
    pair = server.session.pairs[item["pair_key"]]
    assert item["left_is"] in ("a", "b") and item["left"] and item["right"] and item["left"] != item["right"]
    other = "b" if item["left_is"] == "a" else "a"  # each side shows the answer it says it is
    assert (item["left"], item["right"]) == (pair[f"response_{item['left_is']}"], pair[f"response_{other}"])
    assert item["prompt"] == pair["prompt"] and item["source"] == pair["source"]
    status, page = call(server, "GET", "/")
    assert status == 200 and 'lang="ko"' in page and "textContent" in page


def test_bad_requests_get_a_clear_4xx_and_foreign_pages_cannot_write(server):
    item = next_item(server, "kim")["item"]
    good = {"annotator": "kim", "pair_key": item["pair_key"], "left_is": item["left_is"], "decision": "left",
            "request_id": item["request_id"]}
    assert call(server, "POST", "/api/label", json.dumps(good).encode(), {"Content-Type": "text/plain"})[0] == 415
    assert call(server, "POST", "/api/label", b"{not json")[0] == 400
    status, got = call(server, "POST", "/api/label", {**good, "decision": "maybe"})
    assert status == 400 and "decision" in got["error"]
    status, got = call(server, "POST", "/api/label", {**good, "pair_key": "nope"})
    assert status == 404 and "no pair 'nope'" in got["error"]
    status, got = call(server, "POST", "/api/label", {**good, "annotator": ""})
    assert status == 400 and "annotator" in got["error"]
    status, got = call(server, "POST", "/api/label", {**good, "seconds": -3})
    assert status == 400 and "seconds" in got["error"]
    port = server.server_address[1]
    # DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends its own Host
    status, got = call(server, "GET", "/api/session", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "evil.example" in got["error"]
    status, got = call(server, "POST", "/api/label", good, {"Origin": "http://evil.example"})
    assert status == 403 and "origin" in got["error"]
    assert call(server, "GET", "/api/next?annotator=kim&queue=later")[0] == 400
    assert call(server, "GET", "/nothing")[0] == 404
    assert call(server, "GET", "/api/session", headers={"Host": f"localhost:{port}"})[0] == 200
    assert server.session.labels.live() == []  # none of those made a label
    assert send(server, "kim", item, "left")[1] == {"label": 1, "duplicate": False}
    assert send(server, "kim", item, "left")[1] == {"label": 1, "duplicate": True}  # a double click: one label


def test_skip_goes_to_the_review_queue_and_undo_shows_the_pair_again(server):
    first = next_item(server, "kim")["item"]
    send(server, "kim", first, "skip")
    got = next_item(server, "kim")
    assert got["item"]["pair_key"] != first["pair_key"] and got["progress"]["skipped"] == 1
    review = next_item(server, "kim", "review")
    assert review["item"]["pair_key"] == first["pair_key"]
    second = got["item"]
    send(server, "kim", second, "right", reason="더 친절함", seconds=4.2)
    status, undone = call(server, "POST", "/api/undo", {"annotator": "kim", "request_id": "u-1"})
    assert status == 200 and undone["decision"] == "right" and undone["item"]["pair_key"] == second["pair_key"]  # as seen
    assert undone["item"]["left_is"] == second["left_is"]  # shown as it was
    send(server, "kim", review["item"], "tie")  # the skipped pair labelled from the queue leaves it
    assert next_item(server, "kim", "review")["item"] is None
    [stored] = [x for x in server.session.labels.live() if x["decision"] != "skip"]
    assert stored["decision"] == "tie" and stored["version"] == server.session.version and stored["row_id"]


def test_the_stats_view_counts_labels_whose_pair_is_gone(server):
    item = next_item(server, "kim")["item"]
    send(server, "kim", item, "left", seconds=2.0)
    gone = pair(prompt="이전 버전의 질문", source="sft")
    server.session.labels.add(request_id="old", annotator="lee", dataset="rm_v3", version="0ld", pair=gone,
                              decision="a")
    status, got = call(server, "GET", "/api/stats")
    assert status == 200 and got["dataset"] == f"rm_v3@{server.session.version}" and got["pairs"] == 18
    assert got["unmatched"] == {"labels": 1, "by_version": {"0ld": 1}} and got["seconds"]["kim"]["labels"] == 1


def test_two_annotators_at_once_lose_and_duplicate_nothing(rm):
    """Two servers on one data folder (two annotators' terminals), each labelling from several threads with
    every request sent twice: each annotator ends with exactly one label per pair."""
    data, _ = rm
    servers = []
    for who in ("kim", "lee"):
        store = Store(data)
        srv = LabelServer(LabelSession(store, "rm_v3", LabelStore(store.labels), annotator=who))
        srv.start()
        servers.append((who, srv))
    errors = []

    def work(who, srv):
        try:
            while True:
                item = next_item(srv, who)["item"]
                if item is None:
                    return
                for _ in range(2):  # a retried request
                    status, got = send(srv, who, item, "left")
                    assert status == 200, got
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(who, srv)) for who, srv in servers for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for _, srv in servers:
        srv.shutdown()
        srv.server_close()
    assert not errors, errors
    live = LabelStore(Store(data).labels).live()
    for who in ("kim", "lee"):
        mine = [x["pair_key"] for x in live if x["annotator"] == who]
        assert len(mine) >= 18 and len(set(mine)) == 18  # every pair labelled; three threads may race one pair
    # but the same showing (request id) never makes two labels
    assert len({x["request_id"] for x in live}) == len(live)
    s = stats(live)
    assert s["kappa"][0]["pairs"] == 18


def test_labels_apply_on_rebuild_carry_over_and_are_counted_in_manifest_and_card(rm):
    data, res = rm
    store = Store(data)
    labels = LabelStore(store.labels)
    session = LabelSession(store, "rm_v3", labels, annotator="kim")
    table = session.all_pairs
    sft = table.filter(pl.col("source") == "sft")
    kept = sft.filter(pl.col("outcome") == "kept").to_dicts()
    tie = sft.filter(pl.col("outcome") == "tie").to_dicts()[0]

    def decide(row, who, winner):  # winner: the text of the answer people prefer
        item = session.show(row["pair_key"])
        side = "left" if item["left"] == winner else "right"
        assert session.label({"annotator": who, "pair_key": row["pair_key"], "left_is": item["left_is"],
                              "decision": side, "request_id": item["request_id"]})["duplicate"] is False

    decide(kept[0], "kim", kept[0]["response_b"])  # against the judge
    decide(kept[0], "lee", kept[0]["response_b"])
    decide(kept[1], "kim", kept[1]["response_a"])  # with the judge
    decide(tie, "kim", tie["response_a"])  # a pair the judge could not decide
    item = session.show(kept[2]["pair_key"])
    session.label({"annotator": "kim", "pair_key": item["pair_key"], "left_is": item["left_is"],
                   "decision": "both_bad", "request_id": "bb"})

    again = Factory(data, REPO / "recipes").build("rm_v3")
    assert again.version != res.version
    m = again.manifest
    assert m["labels"]["sft"]["human"] == 3 and m["labels"]["sft"]["judge"] == len(kept) - 3
    assert m["labels"]["sft"]["human_labelled"] == 4
    assert (m["labels"]["sft"]["compared_with_judge"], m["labels"]["sft"]["agree_with_judge"]) == (2, 1)
    assert m["labels"]["rlhf"]["role"] == 6 and m["labels"]["rlhf"]["human"] == 0
    pair_step = next(s for s in m["steps"] if s["step"] == "pair")
    assert pair_step["dropped"]["human_both_bad"] == 1 and "tie" not in pair_step["dropped"]  # one pair
    rows = pl.concat([pl.read_parquet(store.version_dir("rm_v3", again.version) / f) for f in m["files"].values()])
    flipped = rows.filter(pl.col("instruction") == kept[0]["prompt"]).row(0, named=True)
    assert (flipped["chosen"], flipped["rejected"], flipped["label_source"]) == (kept[0]["response_b"],
                                                                                kept[0]["response_a"], "human")
    assert rows.filter(pl.col("instruction") == tie["prompt"])["label_source"].to_list() == ["human"]
    card = (store.version_dir("rm_v3", again.version) / "README.md").read_text("utf-8")
    assert "## Labels" in card and "| sft | 4 | 3 | 1 | 0 | 4 | 1 of 2 (50%) |" in card

    # the same labels: the same version (labels made on the older version carry over)
    assert Factory(data, REPO / "recipes").build("rm_v3").version == again.version
    # a label whose pair is gone (an answer changed since) is reported, and the version changes with it
    gone = pair(prompt=kept[3]["prompt"], a=kept[3]["response_a"] + " (예전 답)", b=kept[3]["response_b"],
                source="sft", id=kept[3]["id"])
    labels.add(request_id="old", annotator="kim", dataset="rm_v3", version="0ld", pair=gone, decision="a")
    third = Factory(data, REPO / "recipes").build("rm_v3")
    assert any("1 human labels made on an earlier version match no pair" in w and "0ld" in w
               for w in third.manifest["warnings"])
    labels.close()


def test_a_missing_label_file_is_an_error_naming_the_step(rm, tmp_path):
    data, _ = rm
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (data / "samples").symlink_to(REPO / "data" / "samples")  # a project beside the shipped one
    (tmp_path / "profiles").symlink_to(REPO / "profiles")
    for f in (REPO / "recipes").glob("*.yaml"):
        text = f.read_text("utf-8").replace("min_total: 20,", "min_total: 20, labels: nolabels.jsonl,")
        (recipes / f.name).write_text(text, "utf-8")
    with pytest.raises(DataFactoryError, match=r"steps\[11\]\.pair.*no such file .*nolabels.jsonl"):
        Factory(data, recipes).plan("rm_v3")


def cli(data, *args):
    return subprocess.run([sys.executable, "-m", "datafactory", "--data", str(data), *args], capture_output=True,
                          text=True)


def test_cli_labels_stats_export_import(rm, tmp_path):
    data, _ = rm
    f = tmp_path / "in.jsonl"
    table = pl.read_parquet(next((data / "rm_v3").glob("*/tables/pairs.parquet")))
    row = table.filter(pl.col("source") == "sft").row(0, named=True)
    f.write_text(json.dumps({"prompt": row["prompt"], "response_a": row["response_a"],
                             "response_b": row["response_b"], "winner": "a", "seconds": 3}, ensure_ascii=False) + "\n",
                 "utf-8")
    got = cli(data, "labels", "import", str(f), "--annotator", "kim", "--dataset", "rm_v3")
    assert got.stdout.strip() == "1" and "imported 1 labels; 0 were here already" in got.stderr
    out = cli(data, "labels", "stats", "rm_v3").stdout
    assert "1 labels by 1 annotators on 18 pairs" in out and "people agree with the LLM judge on 1 of 1" in out
    assert cli(data, "labels", "export", str(tmp_path / "out.jsonl")).returncode == 0
    [line] = (tmp_path / "out.jsonl").read_text("utf-8").splitlines()
    assert json.loads(line)["winner"] == "a" and json.loads(line)["annotator"] == "kim"
    for what in (["labels", "export"], ["llm", "export"]):  # a file there, or a folder that is not: said, no traceback
        got = cli(data, *what, str(tmp_path / "out.jsonl"))
        assert got.returncode == 1 and "out.jsonl exists; give a new file name" in got.stderr
        got = cli(data, *what, str(tmp_path / "no" / "out.jsonl"))
        assert got.returncode == 1 and "out.jsonl: cannot be written (No such file or directory)" in got.stderr, got.stderr
        assert not (tmp_path / "no").exists()
    got = cli(tmp_path / "empty", "labels", "stats")
    assert got.returncode == 1 and "no labels yet" in got.stderr
    got = cli(data, "label", "rm_v3", "--sources", "daily")
    assert got.returncode == 1 and "no pairs from source 'daily' (its sources: evol, rlhf, sft)" in got.stderr


def test_label_command_serves_until_stopped_and_prints_its_address(rm):
    data, _ = rm
    proc = subprocess.Popen([sys.executable, "-m", "datafactory", "--data", str(data), "label", "rm_v3", "--port", "0",
                             "--annotator", "kim"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/?annotator=kim")  # the starter's name in it
        base = url.split("?")[0]
        with urllib.request.urlopen(base + "api/session", timeout=10) as r:
            session = json.loads(r.read())
        assert session["dataset"] == "rm_v3" and session["annotator"] == "kim" and session["pairs"] == 18
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped; 0 labels on rm_v3" in err


def test_a_preference_dataset_without_a_pair_step_is_labelled_from_its_rows(project):
    project.jsonl("pref.jsonl", [{"k": f"p{i}", "q": f"질문 {i}", "good": f"좋은 답 {i}", "bad": f"나쁜 답 {i}"}
                                 for i in range(10)])
    project.recipe("pref", {"description": "pairs from a file",
                            "sources": {"p": {"kind": "files", "path": "inputs/pref.jsonl",
                                              "options": {"id": "k", "fields": {"prompt": "q", "chosen": "good",
                                                                                "rejected": "bad"}}}},
                            "output": {"format": "preference"}, "splits": {"train": 0.8, "test": 0.2}, "seed": 1})
    project.factory().build("pref")
    store = Store(project.data)
    labels = LabelStore(store.labels)
    session = LabelSession(store, "pref", labels)
    assert len(session.pairs) == 10 and not session.applied
    item = session.next("kim")["item"]
    assert item["prompt"].startswith("질문") and {item["left"], item["right"]} == {item["prompt"].replace("질문", "좋은 답"),
                                                                                 item["prompt"].replace("질문", "나쁜 답")}
    got = cli(project.data, "label", "pref", "--port", "0", "--sources", "nope")
    assert got.returncode == 1 and "its sources: p" in got.stderr
    srv = LabelServer(session)
    try:  # a port in use is a one-line error naming what to do
        with pytest.raises(DataFactoryError, match=r"cannot listen on 127.0.0.1:\d+ .*another --port"):
            LabelServer(session, port=srv.server_address[1])
    finally:
        srv.server_close()
        labels.close()


def test_lines_break_only_at_line_ends():
    """`datafactory.jsonl.lines`, which every JSONL reader uses (sources, `llm import`, `labels import`, the demo
    answers, batch results): `str.splitlines` where only line ends break, and the same lines for every other text."""
    from datafactory.jsonl import lines

    for text in ("a\nb\n", "a\r\nb", "a\rb\r\n\nc", "", "\n", "a\n\nb\n\n", "한\n글"):
        assert lines(text) == text.splitlines()
    assert lines('{"q": "x\u2028y"}\r\n{"q": "\x85"}\n\x0c\n') == ['{"q": "x\u2028y"}', '{"q": "\x85"}', "\x0c"]


def test_records_number_the_lines_skip_blanks_and_name_the_first_bad_one():
    """`datafactory.jsonl.records`, the reader of `llm import`, decontaminate's files and the demo answers."""
    from datafactory.jsonl import BadLine, records

    assert list(records('{"q": "x\u2028y"}\n\n  \n[1]\r\n"s"')) == [(1, {"q": "x\u2028y"}), (4, [1]), (5, "s")]
    with pytest.raises(BadLine, match="line 2: not valid JSON") as e:
        list(records('{}\n{"a": \n{}'))
    assert e.value.number == 2
    with pytest.raises(BadLine, match="line 1: nested too deeply"):
        list(records("[" * 100_000 + "]" * 100_000))


def test_the_server_answers_bad_and_broken_requests_with_a_status_not_a_traceback(server, capsys):
    """JSON nested 30,000 deep: 400 (it was a RecursionError and no answer); the label store on a full disk: 507 with
    a message (it dropped the connection); a client that hangs up mid-request: nothing printed."""
    import socket

    status, got = call(server, "POST", "/api/label", ("[" * 30_000 + "]" * 30_000).encode())
    assert status == 400 and "nested too deeply" in got["error"]
    db = server.session.labels.db  # a database that may not grow: SQLite's SQLITE_FULL, as on a full disk
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    for _ in range(50):
        item = next_item(server, "kim")["item"]
        status, got = send(server, "kim", item, "left", reason="이유 " * 600)
        if status != 200:
            break
    assert status == 507 and "not saved" in got["error"] and "disk is full" in got["error"], got
    db.execute("PRAGMA max_page_count = 1073741823")
    host, port = server.server_address[:2]
    for _ in range(3):  # a request sent, the connection closed before the answer
        s = socket.create_connection((host, port))
        s.sendall(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        s.close()
    status, _ = call(server, "GET", "/api/stats")
    assert status == 200
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err and "BrokenPipeError" not in err


def test_a_store_on_a_full_disk_says_so_in_one_line_and_keeps_what_it_held(tmp_path):
    """SQLite says SQLITE_FULL when a database may not grow (a full disk; here its page limit): the write raises
    one StoreFull naming the store and what to do (a failed COMMIT's ROLLBACK said only "cannot rollback"), and
    what the store held stays readable."""
    from datafactory.llm.store import ResponseStore
    from datafactory.store import StoreFull

    store = ResponseStore(tmp_path / "r.sqlite3")
    store.mark_inflight("k0", "openai", "m", {"messages": []})
    store.done("k0", {"texts": ["kept"]}, 1, 1, 0.0)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreFull, match=r"the LLM response store cannot write \(database or disk is full\): the disk "
                                        r"is full or failing; free some space"):
        for i in range(1, 200):
            store.mark_inflight(f"k{i}", "openai", "m", {"messages": [{"role": "user", "content": "가" * 5000}]})
    assert store.get("k0")["answer"] == {"texts": ["kept"]}
    labels = LabelStore(tmp_path / "l.sqlite3")
    pages = labels.db.execute("PRAGMA page_count").fetchone()[0]
    labels.db.execute(f"PRAGMA max_page_count = {pages}")
    pair = {"pair_key": "p", "prompt": "가" * 5000, "response_a": "a", "response_b": "b"}
    with pytest.raises(StoreFull, match=r"the label store cannot write"):
        for i in range(200):
            labels.add(request_id=f"r{i}", annotator="kim", dataset="d", pair=pair, decision="a")
    labels.close()
