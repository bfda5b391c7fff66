"""A process that starts services the way the CLIs do, for tests/utils/test_processes.py.

``python service_parent.py main|thread exit|wait [--pool]``: start a redis-server and a plain
managed child (``sleep``) from the main thread or from a thread that then ends, optionally a
reward check worker from another short-lived thread (as the reward server's request threads
do), print one JSON line (pids, Redis port and folder), then exit without stopping anything
(``exit``) or wait to be signalled (``wait``).
"""

from __future__ import annotations

import json
import sys
import threading
import time

from deepeyes.rewards.pool import WorkerPool
from deepeyes.utils.processes import ManagedProcess, RedisServer


def main() -> None:
    where, then = sys.argv[1], sys.argv[2]
    started: dict[str, object] = {}

    def start_services() -> None:
        redis = RedisServer()
        sleeper = ManagedProcess(["sleep", "120"], name="sleeper")
        started.update(redis=redis.pid, redis_port=redis.port, redis_dir=str(redis.workdir), sleeper=sleeper.pid)

    if where == "thread":
        thread = threading.Thread(target=start_services)
        thread.start()
        thread.join()
    else:
        start_services()
    if "--pool" in sys.argv:
        pool = WorkerPool(1)

        def check() -> None:
            outcome = pool.call("os:getpid", timeout_s=60)
            started["worker"] = outcome.value

        thread = threading.Thread(target=check)
        thread.start()
        thread.join()
    time.sleep(0.5)  # the threads that started them are gone now
    print(json.dumps(started), flush=True)
    if then == "exit":
        return
    time.sleep(300)


if __name__ == "__main__":
    main()
