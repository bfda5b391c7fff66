"""``python -m deepeyes.serve``: the command line is derived from :class:`ServeConfig` and the shared model and tool groups (``--help`` lists every field)."""

from __future__ import annotations

import dataclasses
import logging
import sys

import uvicorn

from deepeyes.cli import parse_cli
from deepeyes.config import ConfigError
from deepeyes.model_args import ALIASES, ModelArguments, ToolArguments
from deepeyes.serve.app import TOKEN_ENV, create_app
from deepeyes.serve.config import ServeConfig
from deepeyes.utils.auth import bearer_token


def parse_args(argv: list[str] | None = None) -> ServeConfig:
    """The service's settings; an unknown flag or a bad value exits 2 with the usage, as every DeepEyes CLI does.

    The model and tool flags are the ones infer and the demo take; the service's earlier
    spellings (``--adapter``, ``--upstream_model``, ``--max_tokens``) are aliases of them.
    """
    config, model, tools = parse_cli(
        [ServeConfig, ModelArguments, ToolArguments], argv, prog="python -m deepeyes.serve",
        description="OpenAI-compatible inference service that runs the DeepEyes agent loop with its tools.",
        aliases=ALIASES,
    )
    return dataclasses.replace(config, model=model, tools=tools)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        token = bearer_token(TOKEN_ENV, config.host, config.allow_unauthenticated)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Our middleware logs one line per request; uvicorn's access log would be a second one.
    uvicorn.run(create_app(config, token=token), host=config.host, port=config.port, log_level=config.log_level.lower(), access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
