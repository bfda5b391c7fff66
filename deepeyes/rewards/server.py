"""The reward server's command line: ``python -m deepeyes.rewards.server --port 5000``.

The app is :func:`deepeyes.rewards.service.create_app`. One process serves with a threaded
WSGI server; ``--workers N`` (N > 1) replaces this process with gunicorn running N workers of
the same factory (``gunicorn "deepeyes.rewards.service:create_app(config_path=...)"``), which
is how the server is run under load. The seed's ``reinforcement_learning/evaluation_server/server.py``
is a thin entry point to :func:`main`. See docs/rewards.md for the API.

Authentication: with ``$DEEPEYES_REWARD_TOKEN`` set every request but ``/health`` needs
``Authorization: Bearer <token>``; binding an address other than loopback without it refuses
to start unless ``--allow_unauthenticated`` (:mod:`deepeyes.utils.auth`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepeyes.cli import LoggingArguments, parse_cli
from deepeyes.config import ConfigError
from deepeyes.paths import resolve_path
from deepeyes.rewards.config import RewardConfig, load_reward_config
from deepeyes.utils.auth import bearer_token

#: The bearer token's environment variable (the same name as ``deepeyes.rewards.service.TOKEN_ENV``,
#: which this module does not import: gunicorn's arbiter never needs Flask).
TOKEN_ENV = "DEEPEYES_REWARD_TOKEN"

logger = logging.getLogger(__name__)

PROG = "python -m deepeyes.rewards.server"
DESCRIPTION = "DeepEyes reward server: POST /score, POST /score_batch, GET /health, GET /metrics."


@dataclass(frozen=True)
class ServerArguments:
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (default: loopback only)"})
    port: int = field(default=5000, metadata={"help": "TCP port"})
    config: str | None = field(
        default=None, metadata={"help": "YAML file with RewardConfig settings (default: the built-in defaults)"}
    )
    config_section: str | None = field(
        default=None, metadata={"help": "top-level key of --config holding the reward settings (default: the whole file)"}
    )
    workers: int = field(default=1, metadata={"help": "N > 1 runs N gunicorn worker processes instead of one threaded process"})
    threads: int = field(default=4, metadata={"help": "threads per gunicorn worker (only with --workers > 1)"})
    allow_unauthenticated: bool = field(
        default=False,
        metadata={"help": f"serve a non-loopback --host without a bearer token (${TOKEN_ENV} unset); not recommended"},
    )

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads < 1:
            raise ValueError("--workers and --threads must be >= 1")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")


def gunicorn_argv(args: ServerArguments, log_level: str) -> list[str]:
    """The gunicorn command serving ``create_app`` with the same config (paths made absolute first)."""
    factory_args = [f"log_level={log_level!r}"]
    if args.config is not None:
        factory_args.append(f"config_path={str(resolve_path(args.config))!r}")
    if args.config_section:
        factory_args.append(f"section={args.config_section!r}")
    return [
        sys.executable, "-m", "gunicorn",
        "--workers", str(args.workers),
        "--threads", str(args.threads),
        "--bind", f"{args.host}:{args.port}",
        "--log-level", log_level.lower(),
        # gunicorn's control socket has one default path per user: two servers would collide.
        "--no-control-socket",
        f"deepeyes.rewards.service:create_app({', '.join(factory_args)})",
    ]  # fmt: skip


def serve_threaded(host: str, port: int, config: RewardConfig, token: str | None = None) -> None:
    """One process, one thread per request (Flask is imported only here: gunicorn mode never needs it in the arbiter)."""
    from werkzeug.serving import make_server

    from deepeyes.rewards.service import create_app

    # Our after_request hook logs each request once; silence werkzeug's own access line.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, create_app(config, token=token), threaded=True)
    logger.info("reward server listening on http://%s:%d (%s)", host, port, "bearer token required" if token else "no token")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> None:
    args, logging_args = parse_cli([ServerArguments, LoggingArguments], argv, prog=prog, description=DESCRIPTION)
    logging_args.configure()
    try:
        config = load_reward_config(resolve_path(args.config) if args.config else None, args.config_section)
    except ConfigError as exc:
        raise SystemExit(f"bad reward config: {exc}") from exc
    try:
        token = bearer_token(TOKEN_ENV, args.host, args.allow_unauthenticated)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    if args.workers > 1:
        argv = gunicorn_argv(args, logging_args.log_level)  # the workers read the token from the same variable
        os.execv(sys.executable, argv)
    serve_threaded(args.host, args.port, config, token)


if __name__ == "__main__":
    main()
