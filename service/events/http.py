"""The HTTP client the worker posts events with: every connection goes to a checked address.

httpx resolves names itself when it connects; a name that answered with a public
address when we checked could answer with a private one a moment later (DNS
rebinding).  So the connection pool gets a network backend that resolves and checks
the host (service/events/addresses.py) and connects to that very address.  TLS still
verifies the certificate against the host name in the URL, and the pool still keys
connections by that name, so keep-alive works as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import httpcore
import httpx

from .addresses import checked_addresses

TIMEOUT_SECONDS: Final = 10.0
USER_AGENT: Final = "Letterbox-Webhooks/1"


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, behind a resolve-and-check of every host it connects to."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, allow_private=self._allow_private)
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None, "a name that resolves has at least one address"
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the checking backend: httpx takes no backend argument, so its pool
    (``_pool``, the one attribute that holds it) is replaced by an identical pool that has one."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_CheckedBackend(allow_private=allow_private),
        )


def event_client(*, allow_private: bool) -> httpx.AsyncClient:
    """A client for posting events: checked addresses, no redirects followed, no proxy from the
    environment, a 10 s limit on each step (the sender also bounds the whole request)."""
    return httpx.AsyncClient(
        transport=_CheckedTransport(allow_private=allow_private),
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )
