"""Start sandbox server instances (and a Redis, if none is configured) for CLIs and tests.

``with SandboxCluster(config, num_instances=2) as cluster: client = cluster.client()``
starts real ``python -m deepeyes.sandbox.server`` processes on free loopback ports, waits
until each answers ``/health`` with a filled kernel pool, and stops them all on exit.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import tempfile
from pathlib import Path
from typing import Self

import requests
import yaml

from deepeyes.config import to_dict
from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.utils.processes import ManagedProcess, RedisServer, free_port, wait_until

_START_TIMEOUT_S = 180.0  # interpreter + a full pool of kernels on a busy 2-core machine


def _ready(url: str) -> bool:
    try:
        return bool(requests.get(url + "/health", timeout=1.0).json().get("ready"))
    except (requests.RequestException, ValueError):
        return False


class SandboxCluster:
    """N sandbox servers on loopback sharing one Redis; a context manager."""

    def __init__(self, config: SandboxConfig, num_instances: int = 1, log_dir: Path | None = None):
        if num_instances < 1:
            raise ValueError("num_instances must be >= 1")
        self.config = config
        self.num_instances = num_instances
        self.log_dir = log_dir
        self.ports: list[int] = []
        self.servers: list[ManagedProcess] = []
        self.redis: RedisServer | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="deepeyes-sandbox-cluster-")
        log_dir = Path(self.log_dir or self._tmp.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        config = dataclasses.replace(self.config)
        if config.work_dir is None:  # inside our temp dir, so even a killed instance leaves nothing behind
            Path(self._tmp.name).chmod(0o711)  # kernels run as other uids and must traverse it
            config.work_dir = Path(self._tmp.name) / "work"
        if config.redis_port is None:
            self.redis = RedisServer(host=config.redis_host)
            config.redis_port = self.redis.port
        self.config = config
        config_path = Path(self._tmp.name) / "sandbox.yaml"
        settings = to_dict(config)
        settings["work_dir"] = str(config.work_dir) if config.work_dir else None
        config_path.write_text(yaml.safe_dump({"sandbox": settings}, sort_keys=False))
        for _ in range(self.num_instances):
            self._start_instance(config_path, log_dir)
        for port, server in zip(self.ports, self.servers, strict=True):
            wait_until(lambda port=port: _ready(f"http://{config.host}:{port}"), _START_TIMEOUT_S,
                       f"sandbox server :{port}", server.process)

    def _start_instance(self, config_path: Path, log_dir: Path) -> None:
        port = free_port(self.config.host)
        argv = [sys.executable, "-m", "deepeyes.sandbox.server", "--port", str(port), "--config", str(config_path),
                "--exit_with_parent"]
        # SIGTERM when this process dies: the server shuts its kernels down as on a normal stop.
        self.servers.append(ManagedProcess(argv, name=f"sandbox:{port}", log_path=log_dir / f"sandbox-{port}.log",
                                           death_signal=signal.SIGTERM))
        self.ports.append(port)

    def client(self, **kwargs: object) -> SandboxClient:
        return SandboxClient(self.ports, host=self.config.host, request_timeout_s=self.config.request_timeout_s,
                             default_timeout_s=self.config.default_timeout_s, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
