"""Many sessions at once over two instances: no errors and no cross-talk."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from deepeyes.sandbox.client import SandboxClient


def test_sixteen_concurrent_sessions_keep_their_own_state(client: SandboxClient) -> None:
    sessions = [f"conc-{index}-{uuid.uuid4().hex[:8]}" for index in range(16)]

    def run(index: int) -> list[str]:
        sid = sessions[index]
        outputs = [client.execute(sid, f"mine = {index}\nhistory = [mine]").status]
        for step in range(3):
            result = client.execute(sid, f"history.append(mine * 100 + {step})\nhistory")
            outputs.append(result.result if result.ok else f"{result.status}: {result.stderr}")
        return outputs

    try:
        with ThreadPoolExecutor(max_workers=16) as executor:
            results = list(executor.map(run, range(16)))
    finally:
        for sid in sessions:
            client.close_session(sid)
    for index, outputs in enumerate(results):
        assert outputs[0] == "success"
        assert outputs[-1] == str([index, index * 100, index * 100 + 1, index * 100 + 2])
    used = {client.instances_for(sid)[0] for sid in sessions}
    assert len(used) == 2  # the sessions were spread over both instances
