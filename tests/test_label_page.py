"""The labelling page in a real browser: headless Chromium (Debian's, never `playwright install`) driven by
Playwright. Label with the keyboard, undo, a held-down key and a double click, reload and resume, two annotators at
once, Hangul rendered with a Korean font (a screenshot is kept for people to look at), then a rebuild that applies
the labels. Without chromium the tests fail under CI (`.ci/run` installs it) and skip elsewhere."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from datafactory.engine import Factory
from datafactory.label_server import LabelServer, LabelSession
from datafactory.labels import LabelStore
from datafactory.store import Store
from tests.conftest import REPO

pytestmark = pytest.mark.slow

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SCREENSHOTS = Path(os.environ.get("DATAFACTORY_SCREENSHOTS", REPO / "tests" / "screenshots"))


def build(data: Path):
    """Build rm_v3 in a thread: Playwright's sync API keeps an event loop running in this one, and the LLM steps
    run their own (asyncio.run refuses to start inside a running loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(Factory(data, REPO / "recipes").build, "rm_v3").result()


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        message = "no chromium: apt-get install chromium fonts-nanum (or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def served(tmp_path):
    """rm_v3 built from the samples, and its labelling server on a free port: (server, data dir)."""
    data = tmp_path / "data"
    build(data)
    store = Store(data)
    labels = LabelStore(store.labels)
    srv = LabelServer(LabelSession(store, "rm_v3", labels))
    srv.start()
    yield srv, data
    srv.shutdown()
    srv.server_close()
    labels.close()


def page_for(browser, srv, annotator):
    from playwright.sync_api import expect

    ctx = browser.new_context(locale="ko-KR", viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    page.goto(srv.url + f"?annotator={annotator}")
    expect(page.locator("#progress")).to_contain_text("/ 18")
    return page


def done(page, n):
    from playwright.sync_api import expect

    expect(page.locator("#progress")).to_contain_text(f"{n} / 18 완료")
    expect(page.locator("button[data-decision=left]:not([data-strength])")).to_be_enabled()


def mine(data, who):
    return [x for x in LabelStore(Store(data).labels).live() if x["annotator"] == who]


def test_label_with_the_keyboard_undo_held_key_double_click_reload_and_resume(browser, served):
    from playwright.sync_api import expect

    srv, data = served
    page = page_for(browser, srv, "kim")
    first_prompt = page.locator("#prompt").text_content()
    page.keyboard.press("1")
    done(page, 1)
    second_prompt = page.locator("#prompt").text_content()
    page.keyboard.press("ArrowRight")
    done(page, 2)
    page.keyboard.press("z")  # undo: the last pair comes back
    done(page, 1)
    expect(page.locator("#status")).to_contain_text("되돌림")
    expect(page.locator("#prompt")).to_have_text(second_prompt)
    undone_prompt = second_prompt
    page.locator("#reason").fill("둘 다 비슷하게 친절함")
    page.locator("#left").click()  # back to the keys: focus leaves the reason field
    page.keyboard.press("3")  # tie, with the reason typed
    done(page, 2)
    page.keyboard.press("s")  # skip: to the review queue
    expect(page.locator("#skipped")).to_have_text("1")
    # a held-down key (repeats) makes one label
    page.keyboard.down("4")
    page.keyboard.down("4")
    page.keyboard.down("4")
    page.keyboard.up("4")
    done(page, 3)
    # a double click makes one label
    page.locator("button[data-decision=right]:not([data-strength])").dblclick()
    done(page, 4)
    labels = mine(data, "kim")
    decisions = [x["decision"] for x in labels]
    assert len(labels) == 5 and decisions.count("skip") == 1 and decisions.count("both_bad") == 1
    assert decisions.count("tie") == 1
    [tie] = [x for x in labels if x["decision"] == "tie"]
    assert tie["reason"] == "둘 다 비슷하게 친절함" and tie["prompt"] == undone_prompt
    assert all(x["shown_left"] in ("a", "b") and x["seconds"] is not None and x["seconds"] >= 0 for x in labels)
    assert labels[0]["prompt"] == first_prompt
    # reload: the page resumes where kim stopped
    page.reload()
    done(page, 4)
    expect(page.locator("#skipped")).to_have_text("1")
    shown = page.locator("#prompt").text_content()
    assert shown not in {x["prompt"] for x in labels}
    # the review queue holds the skipped pair
    page.locator("#queue").click()
    [skipped] = [x for x in labels if x["decision"] == "skip"]
    expect(page.locator("#prompt")).to_have_text(skipped["prompt"])
    page.keyboard.press("1")
    expect(page.locator("#skipped")).to_have_text("0")
    done(page, 5)
    # a restarted server (a new process would open the same file) resumes too
    srv.shutdown()
    srv.server_close()
    store = Store(data)
    restarted = LabelServer(LabelSession(store, "rm_v3", LabelStore(store.labels)))
    restarted.start()
    try:
        page.goto(restarted.url + "?annotator=kim")
        done(page, 5)
        assert page.locator("#prompt").text_content() not in {x["prompt"] for x in mine(data, "kim")}
    finally:
        restarted.shutdown()
        restarted.server_close()
    page.context.close()


def test_answers_are_text_and_hangul_renders_with_a_korean_font(browser, served):
    from playwright.sync_api import expect

    srv, data = served
    # an answer holding HTML is shown as text, never run or rendered
    session = srv.session
    key = next(iter(session.pairs))
    session.pairs[key] = {**session.pairs[key], "response_a": "<img src=x onerror=\"document.title='pwned'\"><b>굵게</b>\n둘째 줄"}
    session.order[key] = ""  # shown first
    page = page_for(browser, srv, "kim")
    expect(page.locator("#prompt")).not_to_be_empty()
    html_side = page.locator("#left") if page.locator("#left").text_content().startswith("<img") else page.locator("#right")
    expect(html_side).to_contain_text("<b>굵게</b>")
    assert html_side.locator("img, b").count() == 0 and page.title() != "pwned"
    assert html_side.evaluate("e => e.getClientRects()[0].height") > 0
    # the font Chromium used for the Hangul of the prompt and an answer (not just the CSS asked for)
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    for selector in ("#prompt", "#guideline"):
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        assert fonts and all("Nanum" in f["familyName"] for f in fonts), fonts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "label-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    page.context.close()


def test_the_conversation_shows_as_a_chat_and_answers_as_markdown_never_as_html(browser, served):
    """rm_v3's daily pairs carry the turns before their prompt: the page shows them as chat bubbles (the user's on
    one side, the assistant's on the other) above the prompt. Answers and turns are Markdown built with text nodes:
    bold, lists and code render; HTML inside stays text."""
    from playwright.sync_api import expect

    srv, _ = served
    session = srv.session
    key = next(k for k, p in session.pairs.items() if len(p["turns"]) >= 2)  # a daily pair, turns from the corpus
    turns = session.pairs[key]["turns"]
    md = "**대파**를 먼저 볶으세요.\n\n- 밥 한 공기\n- 달걀 <script>document.title='pwned'</script>\n\n```\nprint('볶음밥')\n```"
    session.pairs[key] = {**session.pairs[key], "response_a": md, "response_b": md.replace("대파", "양파")}
    session.order[key] = ""  # shown first
    page = page_for(browser, srv, "kim")
    expect(page.locator("#turns .turn")).to_have_count(len(turns))
    bubbles = page.locator("#turns .turn")
    for i, t in enumerate(turns):
        expect(bubbles.nth(i)).to_have_class(f"turn {t['role']}")
        expect(bubbles.nth(i)).to_contain_text(t["content"])
    user, assistant = (page.locator(f"#turns .turn.{r}").first for r in ("user", "assistant"))
    assert user.bounding_box()["x"] > assistant.bounding_box()["x"]  # two sides, as a chat
    expect(page.locator("#prompt")).to_have_text(session.pairs[key]["prompt"])
    for side in ("#left", "#right"):
        answer = page.locator(side)
        expect(answer.locator("strong")).to_have_count(1)
        expect(answer.locator("li")).to_have_count(2)
        expect(answer.locator("pre code")).to_have_text("print('볶음밥')")
        expect(answer.locator("li").nth(1)).to_contain_text("<script>")
        assert answer.locator("script").count() == 0
    assert page.title() != "pwned"
    page.context.close()


def test_two_annotators_at_once_then_a_rebuild_applies_the_labels(browser, served):
    from playwright.sync_api import expect

    srv, data = served
    kim, lee = page_for(browser, srv, "kim"), page_for(browser, srv, "lee")
    for i in range(1, 4):  # turn by turn: each gets pairs the other has not labelled yet
        kim.keyboard.press("1")
        lee.keyboard.press("2")
        done(kim, i)
        done(lee, i)
    lee.locator("#statsbtn").click()
    expect(lee.locator("#stats")).to_contain_text(": 6 labels by 2 annotators on 18 pairs")
    k, m = mine(data, "kim"), mine(data, "lee")
    assert len(k) == 3 and len(m) == 3
    assert not {x["pair_key"] for x in k} & {x["pair_key"] for x in m}  # spread out first
    # now everyone labels every sft pair the same way: the left answer wins for kim and lee
    lee.locator("#statsbtn").click()  # back to labelling
    for page in (kim, lee):
        page.locator(".sources input[value=rlhf]").uncheck()
        page.locator(".sources input[value=evol]").uncheck()
        while page.locator("#empty").is_hidden():
            expect(page.locator("button[data-decision=left]:not([data-strength])")).to_be_enabled()  # keys during a request are ignored
            if page.locator("#empty").is_visible():
                break
            before = page.locator("#progress").text_content()
            page.keyboard.press("1")
            expect(page.locator("#progress")).not_to_have_text(before)
        expect(page.locator("#empty")).to_contain_text("모든 쌍을 마쳤습니다")
    kim.context.close()
    lee.context.close()
    live = LabelStore(Store(data).labels).live()
    sft = {x["pair_key"] for x in live if x["source"] == "sft"}
    assert len(sft) == 6
    rebuilt = build(data)
    labels = rebuilt.manifest["labels"]["sft"]
    assert labels["human_labelled"] == 6
    rows = pl.concat([pl.read_parquet(Store(data).version_dir("rm_v3", rebuilt.version) / f)
                      for f in rebuilt.manifest["files"].values()])
    sft_rows = rows.filter(pl.col("source") == "sft")
    assert set(sft_rows["label_source"]) <= {"human"} and sft_rows.height == labels["human"]


def test_a_phone_labels_in_one_column_with_a_korean_keyboard_and_can_change_its_labels(browser, served):
    """At 390x844 the page is one column (the prompt box was 16 px wide, a syllable a line) and Korean words break
    between words; the keys work by their place on the keyboard with a Korean layout on (S types ㄴ); a label says
    how strongly one answer wins; the annotator's own labels are listed and any can be changed; a second browser is
    asked for its name (it got the server's); a server that is gone is said in Korean and English."""
    from playwright.sync_api import expect

    srv, data = served
    srv.session.annotator = "kim"  # what `--annotator kim` gives the server
    ctx = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    page.goto(srv.url)  # no name in the link: a new browser
    expect(page.locator("#annotator")).to_have_value("")
    expect(page.locator("#status")).to_contain_text("작업자 이름")
    page.locator("#annotator").fill("park")
    page.locator("#annotator").press("Enter")
    expect(page.locator("#progress")).to_contain_text("/ 18")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 392  # nothing runs off the screen sideways
    prompt = page.locator("#prompt").bounding_box()
    left, right = page.locator("#left").bounding_box(), page.locator("#right").bounding_box()
    assert prompt["width"] > 300 and left["width"] > 300 and right["y"] > left["y"] + left["height"] - 1  # stacked
    assert page.locator("#guideline").evaluate("e => getComputedStyle(e).wordBreak") == "keep-all"
    # keys by their place: Q (ㅂ on a Korean layout) is "left, slightly"; S (ㄴ) skips
    first = page.locator("#prompt").text_content()
    page.keyboard.down("KeyQ")  # the code a Korean layout sends for ㅂ
    page.keyboard.up("KeyQ")
    expect(page.locator("#status")).to_contain_text("왼쪽 (left) · 조금 (slightly)")
    expect(page.locator("button[data-decision=tie]")).to_be_enabled()  # the next pair is in (keys meanwhile are ignored)
    page.dispatch_event("body", "keydown", {"key": "ㄴ", "code": "KeyS"})
    expect(page.locator("#status")).to_contain_text("건너뜀")
    labels = [x for x in srv.session.labels.live() if x["annotator"] == "park"]
    assert [(x["decision"] == x["shown_left"], x["strength"]) for x in labels if x["decision"] != "skip"] == [(True, "slight")]
    # my labels: the pair labelled first, changed to "right, clearly"
    page.locator("#minebtn").click()
    expect(page.locator("#mine li")).to_have_count(2)
    entry = page.locator("#mine li", has_text=first[:10] if len(first) > 10 else first)
    entry.locator("button").click()
    expect(page.locator("#prompt")).to_have_text(first)
    page.locator("button[data-decision=right]:not([data-strength])").click()
    expect(page.locator("#status")).to_contain_text("오른쪽 (right)")
    expect(page.locator("button[data-decision=tie]")).to_be_enabled()
    from datafactory.labels import latest_votes, side

    mine = [x for x in srv.session.labels.live() if x["annotator"] == "park"]
    latest = latest_votes(mine)
    changed = [v["park"] for v in latest.values() if v["park"]["prompt"] in first or first in v["park"]["prompt"]]
    assert changed and side(changed[0]) == "right" and changed[0]["strength"] == "clear"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "label-page-phone.png"), full_page=True)
    # the server gone (every request refused): said, not the browser's "Failed to fetch"
    page.route("**/api/**", lambda route: route.abort("connectionrefused"))
    page.keyboard.press("3")
    expect(page.locator("#status")).to_contain_text("서버에 연결할 수 없습니다")
    assert "Failed to fetch" not in page.locator("#status").text_content()
    ctx.close()
