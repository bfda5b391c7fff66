"""Output is capped in the kernel as it streams (issue 25 item 11): a 100 MB print never reaches the server whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.launch import SandboxCluster


def peak_mb(pid: int) -> float:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak RSS starts again from the current RSS


@pytest.mark.parametrize(
    ("code", "field", "dropped"),
    [
        ("print('x' * 100_000_000)", "stdout", 100_000_001 - 2000),  # the input: 60 → 348 MB on the server before
        ("'y' * 20_000_000", "result", 20_000_002 - 2000),  # the repr, quotes included
        ("raise ValueError('z' * 20_000_000)", "stderr", None),  # the traceback, and the reply that repeats it
    ],
)
def test_huge_output_is_cut_in_the_kernel(
    sandbox_cluster: SandboxCluster, client: SandboxClient, session_id: str, code: str, field: str, dropped: int | None
) -> None:
    client.execute(session_id, "1")  # the session's kernel is up
    pids = [server.process.pid for server in sandbox_cluster.servers]
    for pid in pids:
        reset_peak(pid)
    before = {pid: peak_mb(pid) for pid in pids}
    result = client.execute(session_id, code, timeout=120)
    text = getattr(result, field)
    assert len(text) < 2200 and "[output truncated: " in text
    if dropped is not None:
        assert text.endswith(f"[output truncated: {dropped} more characters]")
    growth = max(peak_mb(pid) - before[pid] for pid in pids)
    assert growth < 40, f"a server's peak memory grew by {growth:.0f} MB"
    assert client.execute(session_id, "print('still here')").stdout == "still here\n"
