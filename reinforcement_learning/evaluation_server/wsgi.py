"""WSGI entry for multi-worker serving: ``gunicorn --chdir reinforcement_learning/evaluation_server wsgi:app``.

gunicorn passes no arguments to the app, so the config location comes from the
environment: ``DEEPEYES_REWARD_CONFIG`` (a YAML path) and optionally
``DEEPEYES_REWARD_CONFIG_SECTION``. ``server.py --workers N`` sets both and execs gunicorn.
"""

from __future__ import annotations

import logging
import os

from deepeyes.rewards.config import load_reward_config
from deepeyes.rewards.service import create_app

logging.basicConfig(
    level=os.environ.get("DEEPEYES_LOG_LEVEL", "INFO"),
    format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
)

app = create_app(
    load_reward_config(
        os.environ.get("DEEPEYES_REWARD_CONFIG") or None,
        os.environ.get("DEEPEYES_REWARD_CONFIG_SECTION") or None,
    )
)
