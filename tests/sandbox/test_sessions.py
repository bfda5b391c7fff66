"""Session life cycle inside one instance: idle eviction, LRU eviction, ownership moves."""

from __future__ import annotations

import ast
import asyncio
import io
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import redis.asyncio
import yaml
from jupyter_client.channels import HBChannel
from PIL import Image

from deepeyes.config import load_config
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.pool import KernelFactory, KernelPool
from deepeyes.sandbox.sessions import CapacityError, SessionManager
from deepeyes.sandbox.store import AsyncOpenStore, SessionStore
from deepeyes.utils.processes import RedisServer, wait_until

#: The kernel's pid as the host sees it (in its own PID namespace ``os.getpid()`` is 1).
KERNEL_PID = "__deepeyes__.status().payload['pid']"


def _open_nowait(manager: SessionManager, session_id: str, images: list[bytes]) -> dict | None:
    """``open_nowait`` as the server's event loop runs it: awaited, on an asynchronous Redis connection."""
    settings = manager.store.redis.connection_pool.connection_kwargs

    async def run() -> dict | None:
        client = redis.asyncio.Redis(host=settings["host"], port=settings["port"])
        try:
            return await manager.open_nowait(session_id, images, AsyncOpenStore(client, manager.store))
        finally:
            await client.aclose()
    return asyncio.run(run())


@pytest.fixture(scope="module")
def manager(redis_server: RedisServer, make_sandbox_config: Callable[..., SandboxConfig]) -> Iterator[SessionManager]:
    """An in-process instance with a 2 s idle TTL and room for two live sessions."""
    config = make_sandbox_config(pool_size=1, session_ttl_s=2.0, max_sessions=2)
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    with tempfile.TemporaryDirectory(prefix="deepeyes-sandbox-test-") as name:
        Path(name).chmod(0o711)
        pool = KernelPool(KernelFactory(config, Path(name)), config.pool_size).start()
        sessions = SessionManager(config, SessionStore(client, config.state_ttl_s), pool, "in-process:0").start()
        yield sessions
        sessions.shutdown()
        pool.close()
    client.close()


def test_idle_sessions_are_snapshotted_evicted_and_restored(manager: SessionManager) -> None:
    manager.execute("idle", "z = {'k': 5}", timeout=10)
    wait_until(lambda: manager.stats()["sessions"] == 0, 20, "idle eviction")
    assert manager.store.owner("idle") is None
    result = manager.execute("idle", "z['k']", timeout=10)
    assert result.result == "5"
    assert any("restored from its last snapshot" in note for note in result.notes)
    manager.close("idle")


def test_state_changed_by_a_failing_call_survives_eviction(manager: SessionManager) -> None:
    manager.execute("partial", "a = 1", timeout=10)
    assert manager.execute("partial", "a = 2\nraise ValueError('late')", timeout=10).status == "error"
    wait_until(lambda: manager.stats()["sessions"] == 0, 20, "idle eviction")
    assert manager.execute("partial", "a", timeout=10).result == "2"  # the eviction snapshot saw a = 2
    manager.close("partial")


def test_user_code_reassigning_module_functions_does_not_break_its_snapshots(manager: SessionManager) -> None:
    """The snapshot's own json and base64 functions are bound before user code runs."""
    patch = "import json, base64\njson.dumps = base64.b64encode = lambda *a, **k: 'patched'\nkept = 7"
    assert manager.execute("patcher", patch, timeout=10).status == "success"
    wait_until(lambda: manager.stats()["sessions"] == 0, 20, "idle eviction")
    result = manager.execute("patcher", "kept, json.dumps(1)", timeout=10)
    assert result.result == "(7, '1')"  # restored; a snapshot holds names, not module attributes
    assert any("restored from its last snapshot" in note for note in result.notes)
    manager.close("patcher")


def test_least_recently_used_session_makes_room(manager: SessionManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager.config, "session_ttl_s", 3600.0)  # only max_sessions evicts here
    for name in ("lru-a", "lru-b", "lru-c"):
        manager.execute(name, f"tag = {name!r}", timeout=10)
    assert manager.stats()["sessions"] == 2
    assert manager.store.owner("lru-a") is None  # evicted first, state kept in Redis
    assert manager.execute("lru-a", "tag", timeout=10).result == "'lru-a'"
    for name in ("lru-a", "lru-b", "lru-c"):
        manager.close(name)


def test_session_taken_over_elsewhere_is_reloaded_here(manager: SessionManager) -> None:
    manager.execute("moved", "m = 1", timeout=10)
    manager.store.claim("moved", "other-instance:1")
    result = manager.execute("moved", "m", timeout=10)
    assert result.result == "1"
    assert any("restored" in note for note in result.notes)
    assert manager.store.owner("moved") == "in-process:0"
    manager.close("moved")


def test_yaml_section_loads_with_nested_security(tmp_path: Path) -> None:
    path = tmp_path / "tool_manager_config.yaml"
    path.write_text(yaml.safe_dump({"sandbox": {"ports": [8888, 8889], "pool_size": 4,
                                                "security": {"memory_limit_mb": 2048, "import_allowlist": ["math"]}}}))
    config = load_config(path, SandboxConfig, section="sandbox")
    assert config.ports == [8888, 8889] and config.pool_size == 4
    assert config.security.memory_limit_mb == 2048 and config.security.import_allowlist == ["math"]
    assert config.security.os_isolation == "auto"


def test_max_sessions_is_a_hard_bound_under_a_burst_of_opens(manager: SessionManager,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager.config, "session_ttl_s", 3600.0)  # only max_sessions evicts here
    names = [f"burst-{index}" for index in range(8)]
    live: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            stats = manager.stats()
            live.append(stats["sessions"])
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=len(names)) as executor:
            opened = list(executor.map(lambda name: manager.open(name, [], time.monotonic() + 120), names))
    finally:
        stop.set()
        watcher.join()
    assert [reply["session_id"] for reply in opened] == names
    assert max(live) <= 2 and manager.peak_sessions <= 2
    assert manager.stats()["sessions"] == 2
    for name in names:
        manager.close(name)


def test_first_calls_after_a_burst_of_opens_keep_the_bound_and_each_get_a_fresh_kernel(
        manager: SessionManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opens bind no kernel; the first calls do, and all of them together stay within max_sessions."""
    monkeypatch.setattr(manager.config, "session_ttl_s", 3600.0)
    names = [f"first-{index}" for index in range(6)]
    with ThreadPoolExecutor(max_workers=len(names)) as executor:
        list(executor.map(lambda name: manager.open(name, [], time.monotonic() + 120), names))
        assert manager.stats()["unbound"] == manager.stats()["sessions"] == 2  # four were evicted before any call
        live: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                live.append(manager.stats()["sessions"])
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            code = "seen = 'leftover' in globals()\nleftover = 1\n(seen, " + KERNEL_PID + ")"
            firsts = list(executor.map(lambda name: manager.execute(name, code, 120), names))
        finally:
            stop.set()
            watcher.join()
    assert [result.status for result in firsts] == ["success"] * len(names), [r.stderr for r in firsts]
    seen = [ast.literal_eval(result.result) for result in firsts]
    assert [leftover for leftover, _ in seen] == [False] * len(names)
    assert len({pid for _, pid in seen}) == len(names)  # one kernel per session, none reused
    assert max(live) <= 2 and manager.peak_sessions <= 2
    for name in names:
        manager.close(name)


def test_an_open_binds_no_kernel_and_the_first_call_gets_a_fresh_one(manager: SessionManager) -> None:
    wait_until(lambda: manager.stats()["warm_kernels"] == manager.pool.size, 120, "a full pool")
    manager.open("lazy", [], time.monotonic() + 30)
    stats = manager.stats()
    assert stats["sessions"] == stats["unbound"] == 1
    assert stats["warm_kernels"] == manager.pool.size  # the pool was not touched
    first = manager.execute("lazy", "leftover = 1\n" + KERNEL_PID, timeout=30)
    assert first.status == "success" and manager.stats()["unbound"] == 0
    manager.open("lazy", [], time.monotonic() + 30)  # re-open: the bound kernel is killed, none bound yet
    wait_until(lambda: not Path(f"/proc/{first.result}").exists(), 10, "the first kernel gone")
    again = manager.execute("lazy", "('leftover' in globals(), " + KERNEL_PID + " != " + first.result + ")", timeout=30)
    assert again.result == "(False, True)"
    manager.close("lazy")


def test_kernels_run_no_heartbeat_thread(manager: SessionManager) -> None:
    """Liveness is the kernel's pidfd. jupyter_client's heartbeat channel is a thread per kernel
    waking every second; with a 64-kernel pool those threads cost the server about 28 % of its
    CPU per open during a burst, and made a fresh instance's first burst slow (docs/sandbox.md)."""
    wait_until(lambda: manager.stats()["warm_kernels"] == manager.pool.size, 120, "a full pool")
    assert manager.execute("no-heartbeat", "1 + 1", timeout=30).result == "2"
    assert not [thread for thread in threading.enumerate() if isinstance(thread, HBChannel)]
    manager.close("no-heartbeat")


def _png(width: int, height: int, color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_opens_images_are_loaded_at_its_first_call_even_after_eviction(manager: SessionManager,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager.config, "session_ttl_s", 3600.0)
    wait_until(lambda: manager.stats()["warm_kernels"] == manager.pool.size, 120, "a full pool")
    manager.open("eager", [_png(4, 3, "red"), _png(5, 2, "blue")], time.monotonic() + 30)
    assert manager.stats()["unbound"] == 1 and manager.stats()["warm_kernels"] == manager.pool.size
    for name in ("pusher-1", "pusher-2"):  # max_sessions 2: "eager" is evicted before its first call
        manager.open(name, [], time.monotonic() + 30)
    assert manager.stats()["sessions"] == 2 and manager.store.owner("eager") is None
    first = manager.execute("eager", "(image_1.size, image_1.getpixel((0, 0)), image_2.size)", timeout=60)
    assert first.result == "((4, 3), (255, 0, 0), (5, 2))", first.stderr
    changed = manager.execute("eager", "image_1 = image_1.resize((8, 6))\nimage_1.size", timeout=30)
    assert changed.result == "(8, 6)"
    manager.open("pusher-1", [], time.monotonic() + 30)  # evicts "eager" again, now with its snapshot
    manager.open("pusher-2", [], time.monotonic() + 30)
    # The snapshot, not the open's images, comes back: the change made by a call is kept.
    assert manager.execute("eager", "(image_1.size, image_2.size)", timeout=60).result == "((8, 6), (5, 2))"
    for name in ("eager", "pusher-1", "pusher-2"):
        manager.close(name)


def test_a_full_instance_of_busy_sessions_bounds_the_wait_by_the_callers_deadline(manager: SessionManager) -> None:
    with ThreadPoolExecutor(max_workers=2) as executor:
        busy = [executor.submit(manager.execute, f"busy-{index}", "import time\ntime.sleep(6)", 30) for index in range(2)]
        wait_until(lambda: manager.stats()["sessions"] == 2 and manager.stats()["unbound"] == 0, 60, "two busy sessions")
        with pytest.raises(CapacityError, match="max_sessions"):
            manager.open("one-too-many", [], time.monotonic() + 1.0)
        result = manager.execute("one-too-many", "1 + 1", 1.0)
        assert result.status == "timeout" and "could not start this session within the 1 s limit" in result.stderr
        assert not any(future.done() for future in busy)  # answered while every slot was still busy
        assert all(future.result().status == "success" for future in busy)
    assert manager.peak_sessions <= 2
    for name in ("busy-0", "busy-1", "one-too-many"):
        manager.close(name)


def test_an_open_that_needs_no_wait_takes_the_slot_of_an_unbound_session_in_one_step(
        manager: SessionManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """The event loop's open: evicts the least recently used unbound session, keeps the bound."""
    monkeypatch.setattr(manager.config, "session_ttl_s", 3600.0)  # only max_sessions evicts here
    assert _open_nowait(manager, "nowait-a", []) is not None
    assert _open_nowait(manager, "nowait-b", []) is not None
    assert _open_nowait(manager, "nowait-c", [_png(4, 3, "red")])["images"] == 1
    assert manager.stats()["sessions"] == 2 and manager.peak_sessions <= 2
    assert manager.store.owner("nowait-a") is None  # evicted, its ownership released in the same round trip
    assert manager.store.owner("nowait-b") == manager.store.owner("nowait-c") == "in-process:0"
    assert manager.execute("nowait-c", "image_1.size", timeout=10).result == "(4, 3)"
    for name in ("nowait-a", "nowait-b", "nowait-c"):
        manager.close(name)


def test_an_open_that_would_wait_is_left_to_the_blocking_path(manager: SessionManager,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """None (and nothing changed) when the session is busy, holds a kernel, or no slot frees at once."""
    monkeypatch.setattr(manager.config, "session_ttl_s", 3600.0)
    manager.execute("bound-a", "a = 1", timeout=10)
    assert _open_nowait(manager, "bound-a", []) is None  # its kernel must be stopped first
    manager.execute("bound-b", "b = 1", timeout=10)
    assert _open_nowait(manager, "newcomer", []) is None  # full of bound sessions
    assert manager.stats()["sessions"] == 2 and manager.store.owner("newcomer") is None
    manager.close("bound-b")
    lock = manager._lock_for("busy-open")
    with lock:  # a call is running on this session
        assert _open_nowait(manager, "busy-open", []) is None
    assert _open_nowait(manager, "busy-open", []) is not None
    assert manager.execute("bound-a", "a", timeout=10).result == "1"  # untouched by the refusals
    assert manager.open("newcomer", [], time.monotonic() + 30)["session_id"] == "newcomer"
    for name in ("bound-a", "busy-open", "newcomer"):
        manager.close(name)
