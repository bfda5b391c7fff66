"""A process that starts services the way the CLIs do, for tests/utils/test_processes.py.

``python service_parent.py main|thread exit|wait [--pool] [--tree]``: start a redis-server and
a plain managed child (``sleep``) from the main thread or from a thread that then ends,
optionally a reward check worker from another short-lived thread (as the reward server's
request threads do) and a ``reap_tree`` service whose children leave it (as Ray's do), print
one JSON line (pids, Redis port and folder), then exit without stopping anything when a line comes on
stdin (``exit``) or wait to be signalled (``wait``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

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
    if "--tree" in sys.argv:
        # A service whose descendants leave it, as Ray's do: a long-lived child whose own child
        # calls setsid (a session of its own), and a grandchild re-parented to init when its
        # parent exits after 2 s. Each writes its pid to a file.
        folder = Path(tempfile.mkdtemp(prefix="service-tree-"))
        code = (
            "import os, sys, time\n"
            "for name, detach, parent_lives_s in (('orphan', False, 2.0), ('setsid', True, 120.0)):\n"
            "    if os.fork() == 0:\n"
            "        if os.fork() == 0:\n"
            "            if detach: os.setsid()\n"
            "            open(os.path.join(sys.argv[1], name), 'w').write(str(os.getpid()))\n"
            "            time.sleep(120)\n"
            "        time.sleep(parent_lives_s)\n"
            "        os._exit(0)\n"
            "time.sleep(120)\n"
        )
        tree = ManagedProcess([sys.executable, "-c", code, str(folder)], name="tree", reap_tree=True)
        while not all((folder / name).is_file() and (folder / name).read_text() for name in ("orphan", "setsid")):
            time.sleep(0.05)
        time.sleep(3.0)  # the orphan's parent has exited; the reaper recorded the tree meanwhile
        started.update(tree=tree.pid, **{name: int((folder / name).read_text()) for name in ("orphan", "setsid")})
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
        sys.stdin.readline()  # exit (without stopping anything) once the test has looked
        return
    time.sleep(300)


if __name__ == "__main__":
    main()
