"""``python -m deepeyes.serve`` as a user starts it: flags from the config dataclass, a real process, one log line per request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import yaml
from PIL import Image
from serve_helpers import SCRIPT

from deepeyes.images import to_data_url
from deepeyes.model_args import ModelArguments, ToolArguments
from deepeyes.paths import REPO_ROOT
from deepeyes.serve.__main__ import parse_args
from deepeyes.serve.config import ServeConfig
from deepeyes.utils.processes import RedisServer, free_port


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "deepeyes.serve", *args], check=False, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)


def test_help_lists_every_config_field_as_a_snake_case_flag() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    names = [n for n in ServeConfig.__dataclass_fields__ if n not in ("model", "tools")]
    names += [*ModelArguments.__dataclass_fields__, *ToolArguments.__dataclass_fields__]
    for name in names:
        assert f"--{name} " in result.stdout or f"--{name}\n" in result.stdout or f"--{name}," in result.stdout, name


def test_the_shared_model_flags_and_the_services_old_spellings_fill_one_config(tmp_path: Path) -> None:
    new = parse_args(["--adapter_path", "a", "--served_model", "up", "--max_new_tokens", "64", "--api_base", "http://h/v1", "--max_turns", "3"])
    old = parse_args(["--adapter", "a", "--upstream_model", "up", "--max_tokens", "64", "--api_base", "http://h/v1", "--max_turns", "3"])
    assert new == old
    assert (new.model.adapter_path, new.model.served_model, new.model.max_new_tokens, new.tools.max_turns) == ("a", "up", 64, 3)


def test_the_service_process_answers_and_logs_one_line_per_request(tmp_path: Path, redis_server: RedisServer) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT), encoding="utf-8")
    tools = tmp_path / "tools.yaml"
    tools.write_text(yaml.safe_dump({
        "tools": {"enabled": ["search"]},
        "sandbox": {"redis_host": redis_server.host, "redis_port": redis_server.port},
    }), encoding="utf-8")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "deepeyes.serve", "--script_path", str(script), "--tool_manager_config", str(tools),
         "--served_model_name", "eyes", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.3)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
        image = to_data_url(Image.new("RGB", (32, 32), "red"))
        completion = client.chat.completions.create(model="eyes", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "search"}]}])
        assert completion.choices[0].message.content == "found"
        assert completion.usage.model_dump()["tool_calls"]["search"] == 1
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
    lines = [line for line in (tmp_path / "serve.log").read_text().splitlines() if "/v1/chat/completions" in line]
    assert len(lines) == 1 and "POST /v1/chat/completions 200" in lines[0] and "tools=search:1" in lines[0]
