"""An httpx transport that sends requests with aiohttp.

The providers speak httpx (clients, auth flows, MockTransport in tests); underneath, this
transport moves the bytes with aiohttp's connection pool, which on loopback costs about a
third of httpcore's CPU per request (0.4 ms against 1.2 ms measured). On a fleet-wide plan
of 2,000 calls that CPU, not the network, was the floor. aiohttp is already a dependency
(kopf uses it). Errors are raised as the httpx exceptions the providers already map (a
certificate that does not verify as `transport.CertificateNotVerified`, one of them, and
an answer to the handshake that is no TLS as `transport.NoTlsSpoken`).
Requests go through the proxy `Proxies` chooses for their URL (HTTPS_PROXY, NO_PROXY...):
aiohttp is told it per request rather than left to read the environment (`trust_env`),
which knows no CIDR range in NO_PROXY and ignores the lowercase variables' precedence.
"""

from __future__ import annotations

import functools
import os
import ssl

import aiohttp
import httpx
import yarl

from reconciler.printable import clipped, printable
from reconciler.providers.proxy import Proxies, Proxy
from reconciler.providers.transport import (
    CertificateNotVerified,
    NoTlsSpoken,
    ProxyAuthRequired,
)

# Headers aiohttp sets itself from the request it sends; copying httpx's would duplicate them.
_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# aiohttp decompresses bodies; the headers describing the encoded body no longer apply.
# As received (bytes, any case): the answer's headers are handed on as the bytes that came.
_DECODED = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


@functools.lru_cache(maxsize=32)
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)


def _no_tls(exc: aiohttp.ClientConnectorError) -> bool:
    """Whether the server answered the handshake with something that is no TLS."""
    if not isinstance(exc, aiohttp.ClientSSLError):
        return False
    return getattr(exc.os_error, "reason", None) == "WRONG_VERSION_NUMBER"


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """Why a connection failed, in words: "connection refused" rather than aiohttp's
    "Cannot connect to host h:p ssl:default [Connect call failed ('h', p)]"."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        # Its errno (1) would read "operation not permitted"; the reason, and the setting
        # that fixes it without turning verification off, are what help.
        reason = getattr(exc.certificate_error, "verify_message", "") or exc.certificate_error
        return (f"TLS certificate verification failed ({reason}); to trust a private CA, "
                "name in RECONCILER_CA_BUNDLE a bundle of its certificates (it replaces "
                "the default roots)")
    if isinstance(exc, aiohttp.ClientSSLError):
        error = exc.os_error
        reason = getattr(error, "reason", None) or error
        if reason == "WRONG_VERSION_NUMBER":
            # OpenSSL's words for an answer that is no TLS at all: most often a plain HTTP
            # server behind an https:// URL, which the reason alone does not bring to mind.
            return (f"TLS handshake failed ({reason}): the server does not speak TLS on that "
                    "port; if it serves plain HTTP, write the URL with http://")
        return f"TLS handshake failed ({reason})"
    error = exc.os_error
    if error.errno and error.errno > 0:
        return os.strerror(error.errno).lower()
    return str(error.strerror or error).lower()


def _response(status: int, headers: list[tuple[bytes, bytes]], content: bytes,
              request: httpx.Request) -> httpx.Response:
    """The response `httpx.Response(content=...)` makes, without its look-up of each body
    header it would add (which guesses the headers' encoding first): the only one it
    adds to an answer read whole is the decoded length, last, and none for no body."""
    if content:
        headers.append((b"Content-Length", str(len(content)).encode()))
    response = httpx.Response(status, headers=headers, stream=httpx.ByteStream(content),
                              request=request)
    response.read()  # as `content=` does: the body is known, not a stream left to read
    return response


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created on first use, in the running loop) for every host."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext, limit: int, proxies: Proxies | None = None
    ) -> None:
        self._ssl = ssl_context
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._proxies = proxies or Proxies()
        self._proxy_args: dict[Proxy, tuple[yarl.URL, aiohttp.BasicAuth | None]] = {}

    def _proxy(self, request: httpx.Request) -> Proxy | None:
        if not self._proxies.configured:
            return None  # the usual case: the URL's parts need not be spelled out per call
        url = request.url
        return self._proxies.for_url(url.scheme, url.host, url.port)

    def _proxy_arguments(self, proxy: Proxy) -> tuple[yarl.URL, aiohttp.BasicAuth | None]:
        if proxy not in self._proxy_args:
            auth = None
            if proxy.username or proxy.password:
                auth = aiohttp.BasicAuth(proxy.username, proxy.password)
            self._proxy_args[proxy] = (yarl.URL(proxy.url), auth)
        return self._proxy_args[proxy]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit, ssl=self._ssl, enable_cleanup_closed=True
            )
            # Cookies are never used by these APIs; a dummy jar keeps none between requests.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True
            )
        return self._session

    @staticmethod
    def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
        timeouts = request.extensions.get("timeout", {})
        return _client_timeout(timeouts.get("connect"), timeouts.get("read"))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        body = await request.aread()
        proxy = self._proxy(request)
        proxy_url, proxy_auth = self._proxy_arguments(proxy) if proxy else (None, None)
        try:
            async with self._client().request(
                request.method,
                # httpx has already escaped the URL: aiohttp need not parse and quote it again.
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
                proxy=proxy_url,
                proxy_auth=proxy_auth,
            ) as answer:
                content = await answer.read()
                status = answer.status
                # The bytes received, as httpx's own transport hands them on: aiohttp's text
                # of a byte that is no UTF-8 (a proxy's Latin-1 header) cannot be encoded
                # back to ASCII, which httpx does to text headers, and the call failed.
                response_headers = [
                    (k, v) for k, v in answer.raw_headers if k.lower() not in _DECODED
                ]
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CertificateNotVerified(_connect_failure(exc), request=request) from exc
        except aiohttp.ClientProxyConnectionError as exc:
            raise httpx.ProxyError(f"{proxy}: {_connect_failure(exc)}", request=request) from exc
        except aiohttp.ClientHttpProxyError as exc:
            # The proxy's answer to CONNECT: nothing reached the server. A 407 is its
            # credentials missing or refused, which no retry mends.
            refused = ProxyAuthRequired if exc.status == 407 else httpx.ProxyError
            raise refused(
                f"{proxy} answered the tunnel to {request.url.host}:{request.url.port or 443} "
                f"with HTTP {exc.status} {printable(clipped(exc.message, 100))}".rstrip(),
                request=request,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            if proxy_url is not None and (exc.host, exc.port) == (proxy_url.host,
                                                                   proxy_url.port):
                # The proxy's name not found: aiohttp says it as the server's own failure,
                # which would send a user looking for a fault in the server's URL.
                raise httpx.ProxyError(f"{proxy}: {_connect_failure(exc)}",
                                       request=request) from exc
            # No TLS where TLS was asked for is a wrong URL, not an outage: not retried.
            failed = NoTlsSpoken if _no_tls(exc) else httpx.ConnectError
            raise failed(_connect_failure(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=request
            ) from exc
        return _response(status, response_headers, content, request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
