"""The SFT model trainers/sft.py saves is served by a real OpenAI-compatible server (`transformers serve`, started
here on 127.0.0.1) and answers a recipe's `sft` role through both endpoints: chat (the server applies the chat
template the model was saved with) and completions (the profile renders the conversation with the model folder's
chat template). Greedy answers equal the `transformers` provider's for the same requests."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from tests.trainers.conftest import env, run

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(loop, tmp_path):
    """`transformers serve` on 127.0.0.1 (stopped by its pid afterwards): its base URL."""
    cli = shutil.which("transformers", path=os.path.dirname(sys.executable))
    if cli is None:
        pytest.fail("the `transformers` command is missing (pip install 'transformers[serving]': the dev extra has it)")
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([cli, "serve", "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log,
                            env=env())
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail((tmp_path / "serve.log").read_text("utf-8", errors="replace")[-3000:])
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _profile(root, name: str, sft: dict) -> None:
    demo = {"provider": "demo", "answers": "data/samples/llm_answers"}
    roles = {"teacher": demo, "translator": demo, "judge": {**demo, "unmatched": "rules"},
             "sft": {**sft, "params": {"temperature": 0, "max_tokens": 24}}}
    (root / "profiles" / f"{name}.yaml").write_text(yaml.safe_dump({"roles": roles}), "utf-8")


def test_a_served_sft_model_answers_the_sft_role_through_chat_and_completions_as_the_local_model_does(loop, served):
    root = loop.root
    model = str(root / "models" / "loop-sft_v2")
    free = {"price": {"input_per_mtok": 0, "output_per_mtok": 0}, "concurrency": 2}
    _profile(root, "served_chat", {"provider": "openai", "model": model, "base_url": served, **free})
    _profile(root, "served_completions", {"provider": "openai", "model": model, "base_url": served,
                                          "endpoint": "completions", "chat_template": "models/loop-sft_v2", **free})
    _profile(root, "local_greedy", {"provider": "transformers", "model": "models/loop-sft_v2", "batch_size": 1})
    answers = {}
    for profile in ("served_chat", "served_completions", "local_greedy"):
        data = root / f"data-{profile}"
        built = run(root, "python", "-m", "datafactory", "--data", str(data), "--llm", profile, "build", "rm_v3")
        version = built.stdout.strip().splitlines()[-1].split("@")[1]
        manifest = json.loads((data / "rm_v3" / version / "manifest.json").read_text("utf-8"))
        usage = manifest["llm_usage"]["steps"]["steps[8].respond"]
        assert not usage["failed"] and usage["requests"] == 36, (profile, usage, built.stderr[-2000:])
        from datafactory.llm.store import ResponseStore
        from datafactory.store import Store

        store = ResponseStore(Store(data).responses)
        got = {}
        for key in (data / "rm_v3" / version / "llm_keys.txt").read_text().split():
            full = store.get_full(key)
            if full["request"]["role"] == "sft":
                turns = json.dumps(full["request"]["messages"], ensure_ascii=False)
                got[turns] = full["answer"]["texts"][0].strip()
        answers[profile] = got
    assert len(answers["local_greedy"]) == 18  # every sft request: one per prompt
    assert answers["served_chat"] == answers["local_greedy"]
    assert answers["served_completions"] == answers["local_greedy"]
    assert any(len(json.loads(t)) > 1 for t in answers["local_greedy"])  # conversations with earlier turns
