"""Downloading an ``image_url`` without handing clients the service's own network.

A service that fetches any URL a client names lets that client reach whatever the service
can: its loopback ports, the private network behind it, a cloud metadata address (issue 30
found the service fetching from loopback, its errors telling open ports from closed ones).
So every connection the image client makes goes through :class:`GuardedBackend`, which
resolves the host itself, refuses unless every address it resolves to is public (not
loopback, private, link-local, multicast, reserved or unspecified) and, when the operator
named hosts, the host is one of them, and then connects to the address it checked, so a
second DNS answer cannot swap in another. Redirects are followed through the same check.
The operator can allow private addresses (``--allow_private_image_urls``, trusted networks).

What a client learns of a failed fetch is one sentence, the same for a closed port, a
timeout, a TLS failure or an HTTP error status; the reason goes to the service's log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx
from httpcore._backends.auto import AutoBackend


class FetchRefused(Exception):
    """The URL names a host or address the service does not fetch from; no connection was made."""


@dataclass(frozen=True)
class FetchRules:
    """Which hosts an ``image_url`` may be fetched from.

    ``allow_private``: loopback, private and link-local addresses too. ``hosts``: the host
    names allowed (lower case; empty: any host whose addresses pass).
    """

    allow_private: bool = False
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_list(cls, allow_private: bool, hosts: str | Iterable[str] | None) -> FetchRules:
        names = hosts.split(",") if isinstance(hosts, str) else (hosts or [])
        return cls(allow_private, frozenset(name.strip().lower() for name in names if name.strip()))

    def check_host(self, host: str) -> None:
        if self.hosts and host.lower().rstrip(".") not in self.hosts:
            raise FetchRefused(f"host {host!r} is not one of the allowed image hosts")

    def check_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.allow_private:
            if address.is_unspecified or address.is_multicast:
                raise FetchRefused(f"address {address} is not a host")
            return
        if not address.is_global or address.is_multicast:
            raise FetchRefused(f"address {address} is loopback, private or reserved")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with every TCP connection checked against :class:`FetchRules` first."""

    def __init__(self, rules: FetchRules) -> None:
        self.rules = rules
        self._inner = AutoBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        self.rules.check_host(host)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
        for address in addresses:  # all of them: a host may not hide a private address behind a public one
            self.rules.check_address(address)
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        raise FetchRefused("Unix sockets are not fetched from")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose network backend is a :class:`GuardedBackend`."""

    def __init__(self, rules: FetchRules) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(rules),
        )


def image_client(rules: FetchRules) -> httpx.AsyncClient:
    """The client the service fetches ``image_url``s with: guarded connections, no proxies from the environment."""
    return httpx.AsyncClient(transport=_GuardedTransport(rules), trust_env=False)
