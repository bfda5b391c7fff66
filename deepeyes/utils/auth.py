"""Optional bearer-token authentication for the project's HTTP services (reward server, inference service).

Each service reads its token from one environment variable (never from a flag, which
``ps`` would show): ``DEEPEYES_REWARD_TOKEN`` for the reward server, ``DEEPEYES_API_KEY``
for the inference service (what an OpenAI client sends as its ``api_key``); the sandbox
has its own, ``DEEPEYES_SANDBOX_TOKEN``. With the variable set, every request except
``GET /health`` must carry ``Authorization: Bearer <token>``, else HTTP 401. Without it the
service is open, which is allowed only on a loopback address: binding any other address
without a token refuses to start unless the operator passes ``--allow_unauthenticated``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from deepeyes.config import ConfigError

#: Paths answered without a token: liveness probes.
OPEN_PATHS = frozenset({"/health"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_token(env: str, host: str, allow_unauthenticated: bool) -> str | None:
    """The token in ``$env`` (None: no authentication), for a service binding ``host``.

    Raises:
        ConfigError: ``host`` is not loopback, ``$env`` is unset and ``allow_unauthenticated`` is False.
    """
    token = os.environ.get(env) or None
    if token is None and not is_loopback(host) and not allow_unauthenticated:
        raise ConfigError(
            f"binding {host} (not loopback) needs a bearer token: set ${env} for the server and its clients, "
            "or pass --allow_unauthenticated"
        )
    return token


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (always True when ``token`` is None).

    The comparison takes the same time wherever the values differ (``hmac.compare_digest``).
    """
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
