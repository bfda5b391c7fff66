"""The service launcher: services die with the process that started them, and Redis keeps its data.

Issue 30, item 9: a killed trainer left its reward server and redis-server holding their ports,
and normal runs left a redis-server reparented to init. Here a real parent process
(``service_parent.py``) starts a real redis-server, a plain child and a reward check worker,
and ends normally, by SIGTERM or by SIGKILL; nothing it started may outlive it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import redis
from process_watch import running

from deepeyes.paths import REPO_ROOT
from deepeyes.utils.processes import (
    ManagedProcess,
    RedisServer,
    parent_death_available,
    port_is_open,
    spawn,
)

PARENT = Path(__file__).with_name("service_parent.py")

pytestmark = pytest.mark.redis


def _start_parent(where: str, then: str, *extra: str) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(
        [sys.executable, str(PARENT), where, then, *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    line = process.stdout.readline()  # type: ignore[union-attr]
    assert line, process.stderr.read()  # type: ignore[union-attr]
    return process, json.loads(line)


def _children(started: dict) -> list[psutil.Process]:
    return [psutil.Process(started[key]) for key in ("redis", "sleeper", "worker", "tree", "orphan", "setsid") if key in started]


def _left_after(children: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while any(running(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [c for c in children if running(c)]


@pytest.mark.parametrize("where", ["main", "thread"])
@pytest.mark.parametrize("how", ["exit", "SIGTERM", "SIGKILL"])
def test_services_end_with_their_starter(where: str, how: str) -> None:
    process, started = _start_parent(where, "exit" if how == "exit" else "wait", "--pool", "--tree")
    children = _children(started)
    assert len(children) == 6 and all(running(c) for c in children)
    assert psutil.Process(started["orphan"]).ppid() == 1 and os.getsid(started["setsid"]) == started["setsid"]  # they left
    assert port_is_open("127.0.0.1", started["redis_port"])
    started_at = time.monotonic()
    if how == "exit":
        process.stdin.write("\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
    else:
        process.send_signal(getattr(signal, how))
    returncode = process.wait(timeout=30)
    left = _left_after(children, 5.0)
    names = {pid: key for key, pid in started.items() if isinstance(pid, int)}
    assert not left, f"outlived their starter ({how}, started from the {where} thread): {[(names.get(c.pid), c.pid) for c in left]}"
    assert not port_is_open("127.0.0.1", started["redis_port"])
    assert time.monotonic() - started_at < 10
    if how == "exit":
        assert returncode == 0, process.stderr.read()  # type: ignore[union-attr]
    else:
        assert returncode == -getattr(signal, how)  # the parent still dies of the signal, as it would have
    if how == "exit" or (how == "SIGTERM" and where == "main"):
        # Stopped by the parent itself (atexit, or the SIGTERM handler): its temporary folder is gone too.
        assert not Path(started["redis_dir"]).exists()


def test_a_child_started_from_a_thread_outlives_that_thread() -> None:
    """Linux's parent-death signal follows the forking *thread*: a thread that ends must not take its children."""
    assert parent_death_available()
    box: dict[str, ManagedProcess] = {}
    thread = threading.Thread(target=lambda: box.update(child=ManagedProcess(["sleep", "60"], name="sleeper")))
    thread.start()
    thread.join()
    try:
        time.sleep(0.5)
        assert box["child"].alive()
    finally:
        box["child"].stop()
    assert not box["child"].alive()


def test_spawn_refuses_a_preexec_fn_of_its_own() -> None:
    with pytest.raises(TypeError, match="preexec_fn"):
        spawn(["true"], preexec_fn=lambda: None)


def test_redis_keeps_its_data_across_a_restart_and_a_kill(tmp_path: Path) -> None:
    """AOF persistence: a restarted Redis, and a new one on a killed one's folder, still hold every acknowledged write."""
    server = RedisServer(workdir=tmp_path / "redis")
    try:
        client = redis.Redis(host=server.host, port=server.port)
        client.hset("deepeyes:sandbox:s1:vars", mapping={"x": b"3", "arr": b"\x00" * 1000})
        server.restart()
        assert server.aof_dir.is_dir() and list(server.aof_dir.iterdir())
        client = redis.Redis(host=server.host, port=server.port)
        assert client.hgetall("deepeyes:sandbox:s1:vars") == {b"x": b"3", b"arr": b"\x00" * 1000}
        client.set("after-restart", "kept")
        server.kill()  # a crash: no shutdown, no final fsync (the write is in the OS's cache)
    finally:
        server.stop()
    again = RedisServer(port=server.port, workdir=tmp_path / "redis")
    try:
        client = redis.Redis(host=again.host, port=again.port)
        assert client.get("after-restart") == b"kept" and client.hget("deepeyes:sandbox:s1:vars", "x") == b"3"
    finally:
        again.stop()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()  # the run's folder keeps the file after stop


def test_a_temporary_redis_removes_its_folder_and_a_stopped_one_frees_its_port() -> None:
    with RedisServer() as server:
        folder, port = server.workdir, server.port
        assert redis.Redis(host=server.host, port=port).config_get("appendonly") == {"appendonly": "yes"}
    assert not folder.exists() and not port_is_open("127.0.0.1", port)
