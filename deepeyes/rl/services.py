"""The live services an RL run talks to: the reward server and the tools.

What the config points at is used as is; what it leaves empty (no reward-server URL, no
sandbox ports, no Redis port) is started on loopback for the run and stopped when the
context exits. Each is started through :mod:`deepeyes.utils.processes`, so it also dies with
the trainer when the trainer is killed (SIGTERM or SIGKILL): a crashed run leaves no process
behind and no port held. The run's own Redis keeps its append-only file in the run folder
(``<log_dir>/redis``), so a Redis that restarts during the run comes back with its sessions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

import requests
import yaml

from deepeyes.config import load_config, to_dict
from deepeyes.rewards.client import RewardClient
from deepeyes.rewards.config import load_reward_config
from deepeyes.rl.config import RLConfig, RLSetupError
from deepeyes.tool_manager import ToolManager, ToolManagerConfig
from deepeyes.utils.processes import ManagedProcess, RedisServer, free_port, wait_until

logger = logging.getLogger(__name__)

#: The reward server is started as its package module, never by the path of a stage script.
REWARD_SERVER_MODULE = "deepeyes.rewards.server"
#: Start-up takes seconds (sympy-loading check workers), minutes on a machine busy with other
#: work; a server that exits fails the wait at once.
_REWARD_START_TIMEOUT_S = 300.0


def build_tool_manager(config: RLConfig, redis_server: RedisServer | None = None) -> ToolManager:
    """A tool manager for the ``tool`` section (not started yet); ``redis_server``: the run's own
    Redis, used where the configuration names none."""
    tool = config.tool
    base = load_config(config.resolve(tool.tool_manager_config), ToolManagerConfig) if tool.tool_manager_config else ToolManagerConfig()
    redis_host, redis_port = (redis_server.host, redis_server.port) if redis_server is not None else (tool.redis_host, tool.redis_port)
    return ToolManager(
        code_sandbox_ports=list(tool.code_sandbox_ports) or None,
        redis_host=redis_host,
        redis_port=redis_port,
        search_cache_path=str(config.locate(tool.search_cache_path)) if tool.search_cache_path else None,
        text_search_api_type=tool.text_search_api_type,
        config=base,
    )


def _server_healthy(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url + "/health", timeout=1).status_code == 200
    return False


def check_reward_weights(client: RewardClient, expected: list[float]) -> None:
    """Fail when a running reward server scores with other weights than the config asks for."""
    served = client.health().get("weights", {})
    weights = [served.get(name) for name in ("task_completion", "tool_efficiency", "accuracy")]
    if any(w is None for w in weights) or any(abs(a - b) > 1e-9 for a, b in zip(weights, expected, strict=True)):
        raise RLSetupError(
            f"the reward server at {client.url} scores with weights {served} but evaluation.reward_weights is {expected}; "
            "restart it with matching weights or change the config"
        )


def write_reward_config(config: RLConfig, path: Path) -> Path:
    """The run's reward settings as a YAML file: ``evaluation.reward_config`` (defaults when unset)
    with ``evaluation.reward_weights``. The reward server started here (``--config``) and verl's
    in-process reward hook (``config_path``) both score with exactly this file."""
    reward_config = dataclasses.replace(load_reward_config(config.resolve(config.evaluation.reward_config)), weights=list(config.evaluation.reward_weights))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(reward_config)), encoding="utf-8")
    return path


@contextlib.contextmanager
def reward_server(config: RLConfig, log_dir: Path):
    """Yield the reward server's URL, starting one on a free loopback port when none is configured."""
    if config.evaluation.server_url:
        url = config.evaluation.server_url.rstrip("/")
        client = RewardClient(url)
        check_reward_weights(client, config.evaluation.reward_weights)
        client.close()
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="deepeyes-reward-") as tmp:
        config_path = write_reward_config(config, Path(tmp) / "reward_config.yaml")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", REWARD_SERVER_MODULE, "--host", "127.0.0.1", "--port", str(port), "--config", str(config_path)]
        log_dir.mkdir(parents=True, exist_ok=True)
        with ManagedProcess(argv, name=f"reward-server:{port}", log_path=log_dir / "reward_server.log") as process:
            wait_until(lambda: _server_healthy(url), _REWARD_START_TIMEOUT_S, "reward server", process.process)
            logger.info("reward server on %s (log: %s)", url, log_dir / "reward_server.log")
            yield url


@contextlib.contextmanager
def rl_services(config: RLConfig, log_dir: Path):
    """``(tool_manager, reward_url)`` for the run; everything started here stops on exit.

    A Redis is started for the run, its data in ``log_dir/redis``, when neither ``tool.redis_port``
    nor the tool-manager config names one.
    """
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(reward_server(config, log_dir))
        tools = build_tool_manager(config)
        if tools.config.sandbox.redis_port is None:
            redis_server = stack.enter_context(RedisServer(workdir=log_dir / "redis"))
            tools = build_tool_manager(config, redis_server)
        yield stack.enter_context(tools), url
