"""LLM steps in real builds against the fake server: kill -9 drills, 30% failing calls, the cost estimate, the
budget, replay from a copied store, and no secret anywhere."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.llm.conftest import API_KEY, write_profile

pytestmark = pytest.mark.slow

RECIPE = {
    "name": "prefs",
    "description": "teacher and sft answers, judged and paired",
    "sources": {"q": {"kind": "files", "path": "inputs/q.jsonl",
                      "options": {"id": "qid", "fields": {"instruction": "question"}}}},
    "steps": [
        {"template": {}},
        {"respond": {"roles": ["teacher", "sft"], "per_role": {"sft": {"input": "prompt", "prompt": "plain"}}}},
        {"judge": {"data_type": "conversation"}},
        {"pair": {"by": "score"}},
        {"select": {"columns": ["prompt", "chosen", "rejected", "instruction"]}},
    ],
    "output": {"format": "preference"},
    "splits": {"train": 0.8, "test": 0.2},
}


def make_project(root: Path, base_url: str, n: int = 20, **role) -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "recipes" / "prefs.yaml").write_text(yaml.safe_dump(RECIPE, allow_unicode=True), "utf-8")
    (root / "inputs" / "q.jsonl").write_text("".join(
        json.dumps({"qid": f"q{i}", "question": f"{i}번째 질문입니다. 주말에 뭐 하면 좋을까요?"}, ensure_ascii=False) + "\n"
        for i in range(n)), "utf-8")
    write_profile(root / "profiles" / "live.yaml", base_url, **role)
    return root


def df(root: Path, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datafactory", *args, "--llm", "live"], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "DF_TEST_KEY": API_KEY, **(env or {})}, **kw)


def dataset(root: Path) -> pl.DataFrame:
    version = (root / "data" / "prefs" / "latest").read_text().strip()
    return pl.concat([pl.read_parquet(p) for p in sorted((root / "data" / "prefs" / version).glob("*.parquet"))])


def test_kill_9_drill_pays_nothing_twice_but_what_was_in_flight(tmp_path, fake_server):
    """kill -9 the build at random moments of its LLM steps, eleven times, then let it finish: every request the
    server answered more than once was in flight at a kill, and the data equals an uninterrupted build's."""
    server = fake_server(latency=0.03)
    root = make_project(tmp_path / "p", server.base_url, n=24, concurrency=4)
    rng = random.Random(7)
    kills = 0
    for _ in range(11):
        before = len(server.entries())
        proc = subprocess.Popen([sys.executable, "-m", "datafactory", "-q", "build", "prefs", "--llm", "live"], cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "DF_TEST_KEY": API_KEY})
        target = before + rng.randint(1, 25)
        while proc.poll() is None and len(server.entries()) < target:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            break
    assert kills >= 10
    done = df(root, "-q", "build", "prefs")
    assert done.returncode == 0, done.stderr
    twice = sum(n - 1 for n in server.answered().values() if n > 1)
    db = sqlite3.connect(root / "data" / ".llm" / "responses.sqlite3")
    resent = db.execute("SELECT COALESCE(SUM(resent_after_crash), 0) FROM responses").fetchone()[0]
    assert twice <= resent <= kills * 4  # only what was in flight at a kill, at most the concurrency each time
    assert db.execute("SELECT COUNT(*) FROM responses WHERE status != 'done'").fetchone()[0] == 0
    # the same data as a build that was never interrupted (answers depend only on the request)
    clean_server = fake_server(latency=0.0)
    clean = make_project(tmp_path / "clean", clean_server.base_url, n=24, concurrency=4)
    assert df(clean, "-q", "build", "prefs").returncode == 0
    assert dataset(root).sort("id").equals(dataset(clean).sort("id"))
    assert len(clean_server.answered()) == len(server.answered())


def test_with_30_percent_of_calls_failing_every_row_is_built(tmp_path, fake_server):
    """429s, 500s, cut bodies, a proxy's HTML page and a cut body without a JSON content type (both with a 200):
    each is retried, every row is built, and no retry within the run counts as possibly billed twice (only a
    request a killed run left in flight does)."""
    server = fake_server(fail_rate=0.3, faults="429,500,truncated,html,cuttext")
    root = make_project(tmp_path / "p", server.base_url, n=12)
    proc = df(root, "build", "prefs")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    m = json.loads(next((root / "data" / "prefs").glob("*/manifest.json")).read_text())
    total = m["llm_usage"]["total"]
    assert total["calls"] == 12 * 2 + 24 * 6 and sum(total["retries"].values()) > 10 and not total.get("failed")
    assert total["retries"].get("broken_response", 0) > 0  # the HTML page and the cut bodies
    assert total["possibly_billed_twice"] == 0
    assert {e["fault"] for e in server.entries()} >= {"html", "cuttext", "429", "500"}
    assert m["steps"][1]["rows_out"] == 24 and m["steps"][2]["rows_out"] == 24  # no answer or score lost
    with sqlite3.connect(root / "data" / ".llm" / "responses.sqlite3") as db:  # nothing left in flight or resent
        assert db.execute("SELECT COUNT(*) FROM responses WHERE status != 'done'").fetchone()[0] == 0
        assert db.execute("SELECT SUM(resent_after_crash) FROM responses").fetchone()[0] == 0


def test_a_refused_key_is_not_counted_as_possibly_billed_on_the_next_run(tmp_path, fake_server, monkeypatch):
    """A 401 stops the build with one line naming the endpoint without the credentials its URL carries; the request
    it refused was not billed, so the next run (with a good key) does not count it as possibly billed twice."""
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=4)
    from tests.llm.conftest import write_profile

    refused = server.base_url.replace("/v1", "/unauthorized/v1").replace("http://", "http://me:hunter2pw@")
    write_profile(root / "profiles" / "live.yaml", refused)
    bad = df(root, "build", "prefs")
    assert bad.returncode == 1 and "was refused: HTTP 401" in bad.stderr and "Traceback" not in bad.stderr
    assert "hunter2pw" not in bad.stdout + bad.stderr and "at http://127.0.0.1:" in bad.stderr  # the URL, not its password
    for path in (root / "data").rglob("*"):
        if path.is_file():
            assert b"hunter2pw" not in path.read_bytes(), path
    write_profile(root / "profiles" / "live.yaml", server.base_url)
    good = df(root, "build", "prefs")
    assert good.returncode == 0, good.stderr
    m = json.loads(next((root / "data" / "prefs").glob("*/manifest.json")).read_text())
    assert m["llm_usage"]["total"]["possibly_billed_twice"] == 0


def test_plan_estimate_is_within_15_percent_and_calls_nothing(tmp_path, fake_server):
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=20)
    plan = df(root, "plan", "prefs")
    assert plan.returncode == 0, plan.stderr
    assert server.entries() == [] and "40 to call" in plan.stdout and "240 to call" in plan.stdout
    total_line = next(x for x in plan.stdout.splitlines() if x.strip().startswith("total:"))
    est_in, est_out = [int(x.replace(",", "")) for x in
                       __import__("re").findall(r"~([\d,]+) (?:input|output)", total_line)]
    assert df(root, "-q", "build", "prefs").returncode == 0
    m = json.loads(next((root / "data" / "prefs").glob("*/manifest.json")).read_text())
    real = m["llm_usage"]["total"]
    assert abs((est_in + est_out) - (real["input_tokens"] + real["output_tokens"])) <= 0.15 * (real["input_tokens"] + real["output_tokens"])
    assert abs(est_in - real["input_tokens"]) <= 0.10 * real["input_tokens"]  # prompts are counted; only answers are guessed
    again = df(root, "plan", "prefs")
    assert "[built]" in again.stdout


def test_a_large_plan_counts_a_sample_of_its_prompts_and_says_how_close_it_is(tmp_path, fake_server):
    """Over ``EXACT_UP_TO`` requests a step's prompts are counted on a random sample (lowered to 50 here, the judge
    step has 240); the plan says so, and its input total is within the error it states of the exact count."""
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=20)
    code = ("import sys; import datafactory.llm.cost as c; c.EXACT_UP_TO = 50; from datafactory.cli import main; "
            "sys.argv = ['datafactory', *sys.argv[1:]]; main()")

    def plan(*extra):
        p = subprocess.run([sys.executable, "-c", code, "plan", "prefs", *extra, "--llm", "live"], cwd=root,
                           capture_output=True, text=True, env={**os.environ, "DF_TEST_KEY": API_KEY})
        assert p.returncode == 0, p.stderr
        step = {m[0]: int(m[1].replace(",", "")) for m in
                __import__("re").findall(r"(steps\[\d\]\.\w+): .*?~([\d,]+) input", p.stdout)}
        return p.stdout, step

    sampled, est = plan()
    exact, real = plan("--exact-tokens")
    assert server.entries() == []
    line = next(x for x in sampled.splitlines() if "counted on a random" in x)
    assert "a random 50 of its 240 prompts" in line and "--exact-tokens counts every one" in line
    error = float(__import__("re").search(r"within ([\d.]+)%", line).group(1)) / 100
    assert sampled.count("counted on a random") == 1  # the 40-request step is counted whole
    assert "counted on a random" not in exact
    judge = next(k for k in real if real[k] != est[k])
    assert abs(est[judge] - real[judge]) <= max(error, 0.001) * real[judge], (est, real, error)
    again, est_again = plan()
    assert est_again == est and line in again  # the same sample every time


def test_max_cost_refuses_before_any_call(tmp_path, fake_server):
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=20)
    proc = df(root, "build", "prefs", "--max-cost", "0.00001")
    assert proc.returncode == 1 and "over --max-cost $0.0000" in proc.stderr and "nothing was called" in proc.stderr
    assert server.entries() == []


def test_export_import_and_replay_rebuild_the_same_bytes_elsewhere(tmp_path, fake_server):
    """A team shares what it paid for: `llm export --dataset` writes exactly the requests the version asked; another
    machine imports them and rebuilds the same bytes with the replay provider, with no endpoint at all."""
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=6)
    first = df(root, "-q", "build", "prefs")
    assert first.returncode == 0
    shared = tmp_path / "answers.jsonl"
    assert df(root, "llm", "export", str(shared), "--dataset", "prefs").returncode == 0
    rows = [json.loads(x) for x in shared.read_text("utf-8").splitlines()]
    assert len(rows) == len(server.answered()) == 6 * 2 + 12 * 6 and all(r["status"] == "done" for r in rows)
    other = tmp_path / "other"
    shutil.copytree(root / "recipes", other / "recipes")
    shutil.copytree(root / "inputs", other / "inputs")
    write_profile(other / "profiles" / "live.yaml", "http://127.0.0.1:9/v1", provider="replay")
    imported = df(other, "llm", "import", str(shared))
    assert imported.returncode == 0 and imported.stdout.strip() == str(len(rows))
    server.stop()  # no endpoint: every answer must come from the store
    second = df(other, "-q", "build", "prefs")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout  # the same version id
    v = first.stdout.strip().split("@")[1]
    files = sorted(p.name for p in (root / "data" / "prefs" / v).glob("*.parquet"))
    assert "train.parquet" in files
    for f in files:
        assert (root / "data" / "prefs" / v / f).read_bytes() == (other / "data" / "prefs" / v / f).read_bytes()
    # and trace shows where a row came from, calls included
    row_id = dataset(other)["id"][0]
    t = df(other, "trace", "prefs", row_id, "--json")
    traced = json.loads(t.stdout)
    assert traced["row"]["id"] == row_id and traced["source"]["records"][0]["id"] == row_id
    assert {c["request"]["role"] for c in traced["calls"]} == {"teacher", "sft", "judge"}
    assert any(s["step"] == "steps[1].respond" and len(s["rows"]) == 2 for s in traced["steps"])


def test_the_api_key_is_written_nowhere(tmp_path, fake_server):
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=4)
    proc = df(root, "build", "prefs")
    assert proc.returncode == 0
    assert API_KEY not in proc.stdout + proc.stderr
    for path in (root / "data").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_batch_api_half_price_and_a_killed_build_resumes_the_same_batch(tmp_path, fake_server):
    """`batch: true` sends a step's requests as one OpenAI batch (priced at half); the batch id is stored before
    polling, so a build killed while it waits resumes that batch: nothing is submitted or answered twice."""
    server = fake_server(batch_polls=40)
    root = make_project(tmp_path / "p", server.base_url, n=8, batch_poll_seconds=0.05)
    recipe = yaml.safe_load((root / "recipes" / "prefs.yaml").read_text("utf-8"))
    recipe["steps"][1]["respond"]["batch"] = True
    (root / "recipes" / "prefs.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), "utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "datafactory", "-q", "build", "prefs", "--llm", "live"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "DF_TEST_KEY": API_KEY})
    while len(server.entries()) < 16 and proc.poll() is None:  # the batch's 16 lines are answered at submission
        time.sleep(0.01)
    time.sleep(0.3)  # polling now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = df(root, "build", "prefs")
    assert done.returncode == 0, done.stderr
    assert "resuming batch batch_000" in done.stderr  # one batch per role (teacher, sft): the one in flight
    assert all(n == 1 for n in server.answered().values()) and len(server.answered()) == 16 + 16 * 6
    m = json.loads(next((root / "data" / "prefs").glob("*/manifest.json")).read_text())
    respond, judge = m["llm_usage"]["steps"]["steps[1].respond"], m["llm_usage"]["steps"]["steps[2].judge"]
    assert respond["calls"] + respond["cache_hits"] == 16 and respond["calls"] > 0
    per_token_respond = respond["cost_usd"] / (respond["input_tokens"] + 4 * respond["output_tokens"])
    per_token_judge = judge["cost_usd"] / (judge["input_tokens"] + 4 * judge["output_tokens"])
    assert per_token_respond == pytest.approx(per_token_judge / 2, rel=0.01)  # gpt-4o-mini: output is 4x input


def test_max_cost_stops_a_build_at_the_cap_and_the_rerun_pays_nothing_twice(tmp_path, fake_server):
    """A cap the estimate fits under but the real answers pass (the profile guesses 1 output token an answer): the
    build stops in its LLM steps with the cap's error, publishes nothing, and keeps every answer it paid for; the
    same build with a larger cap finishes, asks the server only what was not answered, and stays under that cap."""
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=20, expected_output_tokens=1)
    cap = 0.0098  # the plan estimates ~$0.0089 in all, a whole build pays ~$0.0108
    first = df(root, "build", "prefs", "--max-cost", f"{cap}")
    assert first.returncode == 1 and "the budget of $0.0098 is reached" in first.stderr, first.stderr
    assert "every answer paid so far is kept" in first.stderr and "Traceback" not in first.stderr
    assert not list((root / "data" / "prefs").glob("*/manifest.json"))  # nothing published
    paid = server.answered()
    from datafactory.llm.store import ResponseStore
    from datafactory.store import Store

    kept = ResponseStore(Store(root / "data").responses).totals()
    assert 40 < len(paid) < 280 and kept["answers"] == len(paid) and 0 < kept["cost"] <= cap
    second = df(root, "build", "prefs", "--max-cost", "0.05")
    assert second.returncode == 0, second.stderr
    again = server.answered()
    assert len(again) == 280 and all(n == 1 for n in again.values())  # no request answered twice
    m = json.loads(next((root / "data" / "prefs").glob("*/manifest.json")).read_text())
    judge = m["llm_usage"]["steps"]["steps[2].judge"]
    assert m["steps"][1]["cached"]  # the respond step's answers were kept as its output, and the judge's in the store
    assert judge["calls"] == 280 - len(paid) and judge["cache_hits"] == 240 - judge["calls"]
    assert m["rows"] == 20 and m["steps"][2]["rows_out"] == 40


def test_plan_estimates_the_whole_chain_before_anything_is_built_and_build_checks_every_role_first(tmp_path, fake_server):
    """A recipe over an upstream with LLM steps that is not built: `plan` estimates both (the downstream as a bound,
    from the upstream's stand-in answers), and the bound holds for the real build. Without a key, `build` stops
    before its first step, naming every role; `plan` says so too."""
    server = fake_server()
    root = make_project(tmp_path / "p", server.base_url, n=10)
    upstream = {"name": "answered", "sources": RECIPE["sources"],
                "steps": [{"respond": {"roles": ["teacher"], "output": "output", "explode": False}},
                          {"filter": {"length": {"column": "output", "min": 2}}}],
                "output": {"format": "prompt"}, "splits": {"train": 1.0}}
    upstream["steps"].append({"rename": {"columns": {"instruction": "prompt"}}})
    downstream = {"name": "chain", "sources": {"a": {"kind": "dataset", "options": {"name": "answered"}}},
                  "steps": [{"rename": {"columns": {"prompt": "instruction", "output": "response"}}},
                            {"judge": {"data_type": "conversation"}}, {"template": {}},
                            {"select": {"columns": ["prompt", "score_total"]}}],
                  "output": {"format": "prompt"}, "splits": {"train": 1.0}}
    for body in (upstream, downstream):
        (root / "recipes" / f"{body['name']}.yaml").write_text(yaml.safe_dump(body, allow_unicode=True), "utf-8")
    plan = df(root, "plan", "chain")
    assert plan.returncode == 0, plan.stderr
    assert "answered: steps[0].respond: 10 requests" in plan.stdout and "steps[1].judge: 60 requests" in plan.stdout
    assert "(a bound)" in plan.stdout and "from answered's stand-in answers" in plan.stdout
    assert server.entries() == [] and not (root / "data" / "answered").exists()  # nothing called, nothing built
    # no key: the build stops before any step (the fake server is not OpenAI, so its key is optional: point the
    # roles at OpenAI's own endpoint, where a key is required)
    official = root / "profiles" / "official.yaml"
    official.write_text(yaml.safe_dump({"roles": {r: {"provider": "openai", "model": "gpt-4o-mini",
                                                      "api_key_env": "DF_NO_SUCH_KEY"} for r in ("teacher", "judge")}}))
    for cmd in (["plan", "chain"], ["build", "chain"]):
        got = subprocess.run([sys.executable, "-m", "datafactory", *cmd, "--llm", "official"], cwd=root,
                             capture_output=True, text=True)
        assert "roles teacher, judge: no API key in $DF_NO_SUCH_KEY" in got.stdout + got.stderr, got.stderr
    assert got.returncode == 1 and "nothing was run" in got.stderr and "steps[0]" not in got.stderr
    assert not list((root / "data" / ".cache" / "steps").glob("*.parquet"))
    built = df(root, "build", "chain")
    assert built.returncode == 0, built.stderr
    m = json.loads(next((root / "data" / "chain").glob("*/manifest.json")).read_text())
    assert m["llm_usage"]["total"]["calls"] <= 60  # the plan's bound held
