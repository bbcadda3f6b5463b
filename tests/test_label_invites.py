"""The labelling page beyond one person on loopback: only invited annotators get in, each by a secret link; a label
is recorded under the link's annotator; --revoke ends a link at once; a restart keeps the links."""
from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys

import pytest

from datafactory.label_server import COOKIE, FREE_TRIES, LabelServer, LabelSession
from datafactory.labels import LabelStore
from datafactory.store import Store
from tests.test_labels import rm  # noqa: F401 - the fixture (rm_v3 built from the samples), used by name


def request(srv, method, path, body=None, cookie=None, headers=None):
    """(status, headers, body text) of one request to ``srv``."""
    host, port = srv.server_address[:2]
    c = http.client.HTTPConnection(host, port, timeout=30)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if cookie:
        h["Cookie"] = f"{COOKIE}={cookie}"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, dict(r.getheaders()), text


@pytest.fixture
def invited(rm):  # noqa: F811
    """rm_v3's label server in invited mode, with kim and lee invited: (server, {name: token}, data, the pairs)."""
    data, _ = rm
    store = Store(data)
    labels = LabelStore(store.labels)
    tokens = {who: labels.invite(who) for who in ("kim", "lee")}
    session = LabelSession(store, "rm_v3", labels)
    srv = LabelServer(session, invited=True)
    srv.start()
    yield srv, tokens, data, session
    srv.shutdown()
    srv.server_close()
    labels.close()


def pair_texts(session) -> list[str]:
    return [t for p in session.pairs.values() for t in (p["prompt"][-40:], p["response_a"][:40], p["response_b"][:40])
            if len(t) > 8]


def test_without_a_token_every_route_is_refused_and_leaks_no_pair_text(invited):
    srv, tokens, _, session = invited
    srv.sleep = lambda seconds: None  # the slow-down for many wrong tokens has its own test
    texts = pair_texts(session)
    for method, path, body in (("GET", "/", None), ("GET", "/api/session", None), ("GET", "/api/next?annotator=kim", None),
                               ("GET", "/api/mine?annotator=kim", None), ("GET", "/api/stats", None),
                               ("GET", "/api/export", None), ("GET", f"/api/pair?key={next(iter(session.pairs))}", None),
                               ("POST", "/api/label", {"annotator": "kim", "pair_key": "x", "left_is": "a",
                                                       "decision": "left", "request_id": "r1"}),
                               ("GET", "/?token=wrong", None), ("GET", "/api/next?annotator=kim&token=" + tokens["kim"], None)):
        for cookie in (None, "not-a-token", tokens["kim"][:-1]):
            status, _, text = request(srv, method, path, body, cookie=cookie)
            assert status == 401, (method, path, cookie, status)
            assert not any(t in text for t in texts), (method, path)
            assert "invited" in text
    assert session.labels.live() == []


def test_the_link_gives_a_cookie_and_leaves_the_address_bar(invited):
    srv, tokens, _, _ = invited
    status, headers, _ = request(srv, "GET", f"/?token={tokens['kim']}&sources=sft")
    assert status == 303 and headers["Location"] == "/?sources=sft"  # the token out of the address, the rest kept
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={tokens['kim']};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie
    status, headers, _ = request(srv, "GET", f"/?token={tokens['kim']}", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in headers["Set-Cookie"]  # behind an HTTPS proxy
    status, _, text = request(srv, "GET", "/api/session", cookie=tokens["kim"])
    assert status == 200 and json.loads(text)["annotator"] == "kim" and json.loads(text)["invited"] is True
    # a reverse proxy's host name is fine in this mode (the cookie, not the Host, is the check)
    status, _, _ = request(srv, "GET", "/api/session", cookie=tokens["kim"], headers={"Host": "label.example.org"})
    assert status == 200


def test_labels_are_recorded_under_the_tokens_annotator_whatever_the_client_sends(invited):
    srv, tokens, _, session = invited
    for me, claimed in (("kim", "lee"), ("lee", "kim")):
        status, _, text = request(srv, "GET", f"/api/next?annotator={claimed}", cookie=tokens[me])
        item = json.loads(text)["item"]
        status, _, text = request(srv, "POST", "/api/label", {"annotator": claimed, "pair_key": item["pair_key"],
                                                              "left_is": item["left_is"], "decision": "left",
                                                              "request_id": f"r-{me}"}, cookie=tokens[me])
        assert status == 200, text
        _, _, mine = request(srv, "GET", f"/api/mine?annotator={claimed}", cookie=tokens[me])
        assert [x["pair_key"] for x in json.loads(mine)["labels"]] == [item["pair_key"]]  # their own, not claimed's
    assert sorted(x["annotator"] for x in session.labels.live()) == ["kim", "lee"]
    by = {x["request_id"]: x["annotator"] for x in session.labels.live()}
    assert by == {"r-kim": "kim", "r-lee": "lee"}


def test_a_revoked_link_stops_at_once_and_a_restart_keeps_the_others(invited):
    srv, tokens, data, session = invited
    assert request(srv, "GET", "/api/session", cookie=tokens["lee"])[0] == 200
    p = subprocess.run([sys.executable, "-m", "datafactory", "--data", str(data), "label", "rm_v3", "--revoke", "lee"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "lee's link no longer works" in p.stderr
    assert request(srv, "GET", "/api/session", cookie=tokens["lee"])[0] == 401  # the running server, next request
    assert request(srv, "GET", f"/?token={tokens['lee']}")[0] == 401
    srv.shutdown()
    srv.server_close()
    again = LabelServer(LabelSession(Store(data), "rm_v3", LabelStore(Store(data).labels)), invited=True)
    again.start()
    try:
        assert request(again, "GET", "/api/session", cookie=tokens["kim"])[0] == 200
        assert request(again, "GET", "/api/session", cookie=tokens["lee"])[0] == 401
    finally:
        again.shutdown()
        again.server_close()


def test_wrong_tokens_are_slowed_down_per_address_and_compared_in_constant_time(invited, monkeypatch):
    import hmac

    srv, tokens, _, session = invited
    waits = []
    srv.sleep = waits.append
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    for i in range(FREE_TRIES + 3):
        assert request(srv, "GET", "/api/session", cookie=f"guess{i}")[0] == 401
    assert waits == [1.0, 2.0, 4.0]  # the first five at once, then longer and longer
    assert len(compared) == 2 * (FREE_TRIES + 3)  # every stored digest, each time
    assert request(srv, "GET", "/api/session", cookie=tokens["kim"])[0] == 200 and len(waits) == 3
    assert session.labels.annotator_of("") is None and session.labels.annotator_of(None) is None


def test_tokens_stay_out_of_exports_and_the_store_keeps_only_digests(invited, tmp_path):
    srv, tokens, data, session = invited
    _, _, text = request(srv, "GET", "/api/next?annotator=kim", cookie=tokens["kim"])
    item = json.loads(text)["item"]
    request(srv, "POST", "/api/label", {"pair_key": item["pair_key"], "left_is": item["left_is"], "decision": "left",
                                        "request_id": "r1"}, cookie=tokens["kim"])
    _, _, export = request(srv, "GET", "/api/export", cookie=tokens["kim"])
    p = subprocess.run([sys.executable, "-m", "datafactory", "--data", str(data), "labels", "export",
                        str(tmp_path / "out.jsonl")], capture_output=True, text=True)
    assert p.returncode == 0
    path = Store(data).labels
    raw = b"".join(f.read_bytes() for f in path.parent.glob(path.name + "*"))  # the database, its WAL
    assert raw
    for token in tokens.values():
        assert token not in export and token not in (tmp_path / "out.jsonl").read_text("utf-8")
        assert token.encode() not in raw
    assert json.loads(export.splitlines()[0])["annotator"] == "kim"


def test_the_command_invites_prints_one_link_each_and_refuses_an_open_port(rm):  # noqa: F811
    data, _ = rm
    refused = subprocess.run([sys.executable, "-m", "datafactory", "--data", str(data), "label", "rm_v3", "--host",
                              "0.0.0.0", "--port", "0"], capture_output=True, text=True)
    assert refused.returncode == 1 and "nobody is invited" in refused.stderr and "--annotators kim,lee" in refused.stderr
    proc = subprocess.Popen([sys.executable, "-m", "datafactory", "--data", str(data), "label", "rm_v3", "--port", "0",
                             "--annotators", "kim,lee", "--public-url", "https://label.example.org"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        links = dict(proc.stdout.readline().strip().split(": ", 1) for _ in range(2))
        assert set(links) == {"kim", "lee"}
        assert all(u.startswith("https://label.example.org/?token=") for u in links.values())
        assert links["kim"] != links["lee"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    store = LabelStore(Store(data).labels)
    try:
        token = links["kim"].split("token=", 1)[1]
        assert store.annotator_of(token) == "kim" and set(store.invited()) == {"kim", "lee"}
    finally:
        store.close()
    # --invite makes a new link for one person and ends the old one
    p = subprocess.run([sys.executable, "-m", "datafactory", "--data", str(data), "label", "rm_v3", "--invite", "kim",
                        "--port", "9999"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("kim: http://127.0.0.1:9999/?token=")
    store = LabelStore(Store(data).labels)
    try:
        assert store.annotator_of(token) is None
        assert store.annotator_of(p.stdout.strip().split("token=", 1)[1]) == "kim"
    finally:
        store.close()


@pytest.mark.slow
def test_each_invited_link_labels_in_its_own_browser_under_its_own_name(invited):
    """Two Chromium contexts, one link each: the page fills in the link's name (read-only), the address bar holds
    no token after the redirect, and each one's label is theirs."""
    from playwright.sync_api import expect

    from tests.test_label_page import ARGS, chromium_path

    path = chromium_path()
    if path is None:
        pytest.skip("no chromium (apt-get install chromium fonts-nanum)")
    from playwright.sync_api import sync_playwright

    srv, tokens, _, session = invited
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=ARGS)
        try:
            for who in ("kim", "lee"):
                ctx = browser.new_context(locale="ko-KR")
                ctx.set_default_timeout(10_000)
                page = ctx.new_page()
                page.goto(srv.url + f"?token={tokens[who]}")
                expect(page.locator("#progress")).to_contain_text("/ 18")
                assert "token" not in page.url
                assert page.locator("#annotator").input_value() == who
                assert page.locator("#annotator").evaluate("e => e.readOnly")
                assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
                page.keyboard.press("Digit1")  # the left answer wins
                expect(page.locator("#progress")).to_contain_text("1 / 18")
                ctx.close()
            blocked = browser.new_context().new_page()
            blocked.goto(srv.url)
            assert "invited" in blocked.content()
        finally:
            browser.close()
    assert sorted(x["annotator"] for x in session.labels.live()) == ["kim", "lee"]
