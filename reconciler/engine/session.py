"""A `Session` owns the HTTP clients of one engine run: one pooled client per cloud and
one for every gateway, all behind the same limits (a global bound on calls in flight, and
per gateway host a small concurrency and rate limit), and not calling a server that asked,
by Retry-After, to be called later (`host_waits`: the session's own, or one kept across
sessions by the operator and the watch agent). Close it with `aclose()`."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable

import httpx

from reconciler.engine.config import Settings
from reconciler.engine.host_waits import HostWaits
from reconciler.engine.limits import HostLimit, LimitedTransport, Limits, host_key
from reconciler.model.gateway import Gateway
from reconciler.providers import transport
from reconciler.providers.aiohttp_transport import AiohttpTransport
from reconciler.providers.novacore.client import NovacoreClient
from reconciler.providers.zap.client import ZapClient

TransportFactory = Callable[[], httpx.AsyncBaseTransport]


@functools.lru_cache(maxsize=8)
def _ssl_context(insecure: bool, ca_bundle: str) -> ssl.SSLContext:
    """TLS contexts are safe to share; the operator opens a session per reconcile, so
    building the context once per process keeps the CA bundle from being parsed each time."""
    if insecure:
        return httpx.create_ssl_context(verify=False)
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return httpx.create_ssl_context()


class Session:
    def __init__(
        self,
        settings: Settings,
        *,
        transport_factory: TransportFactory | None = None,
        waits: HostWaits | None = None,
    ) -> None:
        self.settings = settings
        self.limits = Limits(settings.concurrency)
        self.waits = waits if waits is not None else HostWaits()
        # Modbus reads made directly (`verification.via: direct`), per device address: one
        # connection at a time, as many Modbus TCP devices (and the dongles and gateways in
        # front of several) serve one client and close the connection of any other, and at
        # the gateways' rate. Bounds of their own, so devices that never answer cannot hold
        # the slots of the HTTP calls of the rest of the fleet.
        self.modbus_limits = Limits(
            settings.concurrency, default=HostLimit(1, settings.gateway_rate)
        )
        self._transport_factory = transport_factory
        self._clients: list[httpx.AsyncClient] = []
        self._zaps: dict[str, ZapClient] = {}
        self._gateways_http: httpx.AsyncClient | None = None
        self._novacore: NovacoreClient | None = None
        self._ssl: ssl.SSLContext | None = None
        self._shared: AiohttpTransport | None = None
        self.extra: dict[str, object] = {}  # clients of other platforms, created on demand

    def ssl_context(self) -> ssl.SSLContext:
        """One TLS context shared by every client of the session. Building one loads the CA
        bundle (20-50 ms of CPU); one per gateway client made a 1,000-gateway plan spend
        most of its time, and memory, there."""
        if self._ssl is None:
            self._ssl = _ssl_context(
                self.settings.insecure_skip_tls_verify, self.settings.ca_bundle
            )
        return self._ssl

    def _transport(self) -> httpx.AsyncBaseTransport:
        """The one connection pool of the session (aiohttp underneath, for every host)."""
        if self._shared is None:
            self._shared = AiohttpTransport(
                ssl_context=self.ssl_context(), limit=self.settings.concurrency,
                proxies=self.settings.proxies,
            )
        return self._shared

    def http_client(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        auth: httpx.Auth | None = None,
        url_setting: str = "",
    ) -> httpx.AsyncClient:
        """A client behind the session's limits (global, and per host where set), sharing
        the session's connection pool. `url_setting`: the setting `base_url` came from."""
        inner = self._transport_factory() if self._transport_factory else self._transport()
        client = transport.new_client(
            base_url,
            headers=headers,
            auth=auth,
            url_setting=url_setting,
            transport=LimitedTransport(inner, self.limits, self.waits),
            timeout=timeout
            or httpx.Timeout(self.settings.timeout, connect=min(5.0, self.settings.timeout)),
        )
        self._clients.append(client)
        return client

    @property
    def novacore(self) -> NovacoreClient:
        if self._novacore is None:
            headers = {"Authorization": f"Bearer {self.settings.novacore_token}"}
            self._novacore = NovacoreClient(
                self.http_client(self.settings.novacore_url, headers=headers,
                                 url_setting="RECONCILER_NOVACORE_URL")
            )
        return self._novacore

    def zap(self, gateway: Gateway) -> ZapClient:
        zap = gateway.spec.zap
        assert zap is not None
        client = self._zaps.get(gateway.name)
        if client is None:
            url = self.settings.gateway_url(zap.serial, str(zap.url))
            # Every gateway shares one client: the gateways differ only in URL, and a client
            # each cost a tenth of a fleet-wide plan's CPU to create and close.
            if self._gateways_http is None:
                self._gateways_http = self.http_client("")
            client = ZapClient(self._gateways_http, name=gateway.name, url=url)
            # Its host is the gateway URL's: taken from the URL the client parsed already.
            self.limits.set_host(
                host_key(client.devices_url),
                HostLimit(self.settings.gateway_concurrency, self.settings.gateway_rate),
            )
            self._zaps[gateway.name] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
