"""The fake OpenAI-compatible server (a subprocess) and profiles pointing at it."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
API_KEY = "sk-test-secret-never-written-0123456789"


class FakeServer:
    def __init__(self, tmp: Path, **opts):
        self.dir = tmp
        self.log = tmp / f"server-{time.monotonic_ns()}.log"
        port_file = tmp / f"port-{time.monotonic_ns()}"
        args = [sys.executable, str(HERE / "fake_openai.py"), "--port-file", str(port_file), "--log", str(self.log)]
        for k, v in opts.items():
            flag = "--" + k.replace("_", "-")
            args += [flag] if v is True else [flag, str(v)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(300):
            if port_file.exists():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{port_file.read_text()}/v1"

    def entries(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text("utf-8").splitlines() if x.strip()]

    def answered(self) -> dict[str, int]:
        """request body hash -> how many times the server completed it (status 200)."""
        out: dict[str, int] = {}
        for e in self.entries():
            if e["status"] == 200:
                out[e["key"]] = out.get(e["key"], 0) + 1
        return out

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def fake_server(tmp_path):
    servers = []

    def start(**opts) -> FakeServer:
        s = FakeServer(tmp_path, **opts)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def write_profile(path: Path, base_url: str, **role_overrides) -> Path:
    """A profile whose every role is the fake server's `gpt-4o-mini` (priced by genai-prices)."""
    role = {"provider": "openai", "model": "gpt-4o-mini", "base_url": base_url, "api_key_env": "DF_TEST_KEY",
            "params": {"temperature": 0.7, "max_tokens": 64}, "concurrency": 8, "timeout": 10, "max_attempts": 10,
            "expected_output_tokens": 20}
    role.update(role_overrides)
    roles = {r: dict(role) for r in ("teacher", "judge", "translator", "sft")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"roles": roles}, allow_unicode=True), "utf-8")
    return path


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("DF_TEST_KEY", API_KEY)
    return API_KEY
