"""Reward server CLI: ``python reinforcement_learning/evaluation_server/server.py --port 5000``.

One process serves with a threaded WSGI server; ``--workers N`` (N > 1) replaces this
process with gunicorn running N workers of the same app (``wsgi.py`` beside this file),
which is how the server is run under load. See docs/rewards.md for the API.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from deepeyes.config import ConfigError
from deepeyes.rewards.config import RewardConfig, load_reward_config

HERE = Path(__file__).resolve().parent
#: wsgi.py reads the config location from these, since gunicorn passes no arguments to the app.
CONFIG_ENV = "DEEPEYES_REWARD_CONFIG"
SECTION_ENV = "DEEPEYES_REWARD_CONFIG_SECTION"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="DeepEyes reward server: POST /score, POST /score_batch, GET /health, GET /metrics.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=5000, help="TCP port (default: 5000)")
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML file with RewardConfig settings (default: built-in defaults)"
    )
    parser.add_argument(
        "--config-section", default=None, help="top-level key of --config holding the reward settings (default: whole file)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="N > 1 runs N gunicorn worker processes instead of one threaded process"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (only with --workers > 1)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    return parser


def exec_gunicorn(args: argparse.Namespace) -> None:
    """Replace this process with gunicorn serving ``wsgi:app`` with ``args.workers`` workers."""
    env = dict(os.environ)
    if args.config is not None:
        env[CONFIG_ENV] = str(args.config.resolve())
    if args.config_section:
        env[SECTION_ENV] = args.config_section
    argv = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(args.workers),
        "--threads", str(args.threads),
        "--bind", f"{args.host}:{args.port}",
        "--chdir", str(HERE),
        "--log-level", args.log_level.lower(),
        # gunicorn's control socket has one default path per user: two servers would collide.
        "--no-control-socket",
        "wsgi:app",
    ]
    os.execve(sys.executable, argv, env)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workers < 1 or args.threads < 1:
        raise SystemExit("--workers and --threads must be >= 1")
    try:
        config = load_reward_config(args.config, args.config_section)
    except ConfigError as exc:
        raise SystemExit(f"bad reward config: {exc}") from exc
    if args.workers > 1:
        exec_gunicorn(args)
    serve_threaded(args.host, args.port, config)


def serve_threaded(host: str, port: int, config: RewardConfig) -> None:
    """One process, one thread per request (Flask is imported only here: gunicorn mode never needs it in the arbiter)."""
    from werkzeug.serving import make_server

    from deepeyes.rewards.service import create_app

    # Our after_request hook logs each request once; silence werkzeug's own access line.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, create_app(config), threaded=True)
    logging.getLogger("deepeyes.rewards.server").info("reward server listening on http://%s:%d", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
