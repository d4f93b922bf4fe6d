"""The one place HTTP errors become ProviderErrors, and the factory of httpx clients.

Network failures, timeouts, 5xx and 429 are retryable (`ProviderUnavailable`, with the
server's Retry-After), and so is a call not sent because its server asked to be left alone
until later (`AskedToWait`); 401/403 are `ProviderAuthError`, and so is a server
certificate that does not verify; 409 `ProviderConflict`; other 4xx `ProviderRejected`.
A platform's error envelope is said as its client summarises it (`code: message`, whatever
the status: a 5xx reads as a 4xx does), else the body, truncated, reaches the message; an
HTML page (a proxy's error page) by its title.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from reconciler.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from reconciler.printable import clipped, printable
from reconciler.providers.html_page import looks_like_html, page_words
from reconciler.providers.proxy import Proxies, Proxy
from reconciler.providers.redaction import redact, sent_secrets, sent_tokens
from reconciler.sources import json_text

_BODY_LIMIT = 300
_PAGE_WORDS_LIMIT = 120
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# What a platform's client makes of the decoded body of an answer that is no success: its
# error envelope in a few words (`code: message`), or None when the body is not of its shape.
Summariser = Callable[[Any], "str | None"]


class CertificateNotVerified(httpx.ConnectError):
    """The server's TLS certificate did not verify (raised by the transport). Nothing was
    sent, and trying again cannot help until the CAs trusted change: unlike other failures
    to connect, it is not retried, and it stops a plan as rejected credentials do."""


class NoTlsSpoken(httpx.ConnectError):
    """The server answered the TLS handshake with something that is no TLS (OpenSSL's
    WRONG_VERSION_NUMBER: most often a plain-HTTP server behind an https:// URL). As with a
    certificate that does not verify, nothing was sent and no retry can help: the URL
    must change. It stops a plan rather than defer its sites as an outage would."""


class ProxyAuthRequired(httpx.ProxyError):
    """The proxy refused to open a tunnel without credentials, or with the ones the proxy
    variable's URL holds (407 to CONNECT). Like a certificate that does not verify, it is
    not retried: only new settings help."""


class AskedToWait(httpx.TransportError):
    """Not sent: the request's server asked, by the Retry-After of an earlier answer, not
    to be called before `until` (raised by the transport that keeps those answers). It is
    retryable, as the 429 that asked, after `left` seconds. `asked`: what the server asked
    for, in words, when it was longer than is waited (`until` is then a day after the
    answer): said, so that `until` is not taken for the server's."""

    def __init__(self, origin: str, left: float, until: datetime.datetime,
                 asked: str = "") -> None:
        when = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        more = f" (it asked for {asked}; a day at most is waited)" if asked else ""
        super().__init__(
            f"not sent: {origin} asked (Retry-After) not to be called before {when}, "
            f"{math.ceil(left)} s from now{more}"
        )
        self.left = left


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies()


class ApiClient(httpx.AsyncClient):
    """httpx's async client, trimmed for JSON APIs called thousands of times per run: no
    cookie jar (none of the APIs uses cookies, and looking for them in urllib's machinery
    was a tenth of a call's CPU), responses freed as soon as they are dropped, and a path
    joined to the base URL with one parse instead of two. `url_setting`: the setting that
    gave the base URL, named when a call under a path of it is not found."""

    url_setting = ""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("API clients keep no cookies")

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await super().send(request, **kwargs)
        if kwargs.get("stream"):
            return response
        # httpx wraps the body in a stream that points back at its response; once the body is
        # read, a plain stream breaks that cycle, so the response is freed when dropped instead
        # of waiting for the cycle collector (2,000 of them in a fleet-wide plan).
        with contextlib.suppress(httpx.ResponseNotRead):
            response.stream = httpx.ByteStream(response.content)
        return response

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        # A path is joined to the base URL as text, then parsed once; httpx would parse the
        # path, then the joined URL again (URL parsing is a fifth of a write's CPU).
        if isinstance(url, str) and url.startswith("/") and self.base_url.is_absolute_url:
            url = str(self.base_url).rstrip("/") + url
        if _one_step(method, kwargs) and not self.params:
            url = httpx.URL(url)
            if url.is_absolute_url:
                request = self._one_step_request(method, url, kwargs.get("json"))
                if request is not None:
                    return request
        return super().build_request(method, url, **kwargs)

    def _one_step_request(self, method: str, url: httpx.URL,
                          json_body: Any) -> httpx.Request | None:
        """The request httpx builds for a call with nothing of its own but, at most, a
        JSON body (a read, or a write of a JSON body: nearly every call of a plan and an
        apply), built in one step: httpx copies the client's headers three times, looks
        each up to fill in the body's headers, and parses the URL again: measured side by
        side, 35 us of CPU per read and 45 us per write of a JSON body there, against 19
        and 22 here. The JSON is encoded with httpx's options by an encoder made once
        (`json.dumps` given options makes one at each call). The same headers, in the
        same order (Host first, a body's Content-Length and Content-Type last), the same
        body and the same timeouts; None when the client's headers name one of the headers
        httpx would add (`_ADDED`), which httpx keeps instead of its own."""
        raw = self.headers.raw
        if any(name.lower() in _ADDED for name, _ in raw):
            return None
        headers = [(b"Host", url.netloc), *raw]
        body = b""
        if json_body is not None:
            body = _JSON_ENCODER.encode(json_body).encode("utf-8")
            headers += [(b"Content-Length", str(len(body)).encode()),
                        (b"Content-Type", b"application/json")]
        request = httpx.Request(
            method, url, headers=headers, stream=httpx.ByteStream(body),
            extensions={"timeout": self.timeout.as_dict()},
        )
        request.read()  # as httpx does: the body is known, not a stream to read
        return request


# The methods httpx gives a `Content-Length: 0` when they carry no body.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The headers httpx adds to a request it builds, unless the client's headers name them.
_ADDED = frozenset({b"host", b"content-length", b"content-type", b"transfer-encoding"})
# httpx's encoding of a `json=` body (`httpx._content.encode_json`).
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _one_step(method: str, kwargs: dict[str, Any]) -> bool:
    """Whether a request is built of the client's settings and at most a `json=` body:
    no content, data, files, params, headers, cookies, timeout or extensions of its own
    (`AsyncClient.request` passes each, None when not given), and, with no body, by a
    method that is given no body's headers."""
    if kwargs.get("timeout", httpx.USE_CLIENT_DEFAULT) is not httpx.USE_CLIENT_DEFAULT:
        return False
    if any(value is not None for key, value in kwargs.items() if key not in ("timeout", "json")):
        return False
    return kwargs.get("json") is not None or method.upper() not in _BODY_METHODS


class _ProxyRouting(httpx.AsyncBaseTransport):
    """httpx's own transport, one per proxy (and one for direct calls), each request sent
    through the one `Proxies` chooses for its URL: httpx's reading of the environment
    (`trust_env`) knows no CIDR range in NO_PROXY, and is off anyway once a transport is
    given, as every client here is."""

    def __init__(self, proxies: Proxies, verify: bool | str) -> None:
        self._proxies = proxies
        self._verify = verify
        self._transports: dict[Proxy | None, httpx.AsyncHTTPTransport] = {}

    def _transport(self, proxy: Proxy | None) -> httpx.AsyncHTTPTransport:
        if proxy not in self._transports:
            auth = (proxy.username, proxy.password) if proxy and proxy.username else None
            self._transports[proxy] = httpx.AsyncHTTPTransport(
                verify=self._verify,
                retries=0,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                proxy=httpx.Proxy(proxy.url, auth=auth) if proxy else None,
            )
        return self._transports[proxy]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        proxy = self._proxies.for_url(url.scheme, url.host, url.port)
        return await self._transport(proxy).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()


def new_client(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    verify: bool | str = True,
    auth: httpx.Auth | None = None,
    proxies: Proxies | None = None,
    url_setting: str = "",
) -> httpx.AsyncClient:
    """An async client with pooling and timeouts. TLS is verified unless told otherwise.
    Without a `transport`, httpx's own, through the proxy `proxies` chooses per URL.
    `url_setting`: the setting `base_url` came from (`ApiClient`)."""
    client = ApiClient(
        base_url=base_url,
        headers=headers or {},
        transport=transport or _ProxyRouting(proxies or Proxies(), verify),
        timeout=timeout,
        auth=auth,
        follow_redirects=False,
    )
    client.url_setting = url_setting
    return client


def segment(value: str) -> str:
    """`value` as one path segment of a URL: serials and ids are what a gateway or cloud
    reported, and a `/`, `?`, space or control character in one must not change the path."""
    return urllib.parse.quote(value, safe="")


_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds (a fraction taken too) or an HTTP
    date. Anything else (a negative number, `inf`, more digits than a float holds, text)
    is None, as if the header were absent: the answer is still retried, after the usual
    backoff, instead of being taken for one of a shape the platform does not document."""
    text = (value or "").strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        # A date "-0000" is UTC (RFC 5322); read as local time it would be off by hours.
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return max(0.0, parsed.timestamp() - time.time())


def _body_excerpt(response: httpx.Response, text: str | None = None) -> str:
    """`text` (what a platform's client made of the answer's error), else the answer's
    body: on one line, without what was sent as a secret, and cut short with the length
    of the whole said (`clipped`), so a reader knows how much was left out."""
    secrets: set[str] = set()
    tokens: set[str] = set()
    # A response made without a request (in tests) has nothing sent to take out.
    with contextlib.suppress(RuntimeError):
        secrets, tokens = sent_secrets(response.request), sent_tokens(response.request)

    def masked(said: str) -> str:
        return redact(said, secrets, tokens)

    if text is None:
        try:
            text = response.text
        except (UnicodeDecodeError, httpx.ResponseNotRead):
            return ""
        if looks_like_html(text, response.headers.get("Content-Type", "")):
            # A proxy's error page, not the platform's answer: its title, not its markup.
            # Its secrets masked in the page and in its text as shown, before that text is
            # folded and cut: a secret across the cut would leave its start.
            words = page_words(masked(text), masked) or "no text"
            text = f"{clipped(words, _PAGE_WORDS_LIMIT)} (an HTML page of {len(text):,} characters)"
    text = printable(" ".join(masked(text).split()))
    return clipped(text, _BODY_LIMIT)


def error_for(
    response: httpx.Response, *, address: str = "", operation: str = "",
    summary: str | None = None, base_url: httpx.URL | None = None, url_setting: str = "",
) -> ProviderError:
    """The error an answer that is no success maps to. `summary`: the platform's error in
    a few words, where its client knows the platform's error envelope; else the body.
    `base_url`, `url_setting`: the client's base URL and the setting it came from, named
    in a 404 when the base URL has a path (`_path_hint`)."""
    status = response.status_code
    message = f"{operation or response.request.method} {response.request.url.path}: HTTP {status}"
    excerpt = _body_excerpt(response, summary)
    if excerpt:
        message += f": {excerpt}"
    kwargs: dict[str, Any] = {"address": address, "operation": operation, "status": status}
    hint = _path_hint(base_url, url_setting) if status == 404 else None
    if hint is not None:
        message += hint
        kwargs["url_setting"] = url_setting
    if status == 429 or status >= 500:
        return ProviderUnavailable(
            message, retry_after=retry_after_seconds(response.headers.get("Retry-After")), **kwargs
        )
    if status in (401, 403):
        return ProviderAuthError(message, **kwargs)
    if status == 407:
        # A proxy's answer to a plain-http call it forwards: its credentials, not the API's.
        return ProviderAuthError(
            message + " (the HTTP proxy asks for credentials: give them in the proxy URL, "
            "http://user:password@host:port)", **kwargs)
    if status == 409:
        return ProviderConflict(message, **kwargs)
    return ProviderRejected(message, **kwargs)


def _path_hint(base_url: httpx.URL | None, url_setting: str) -> str | None:
    """What to check when a call under a base URL with a path (`https://host/api/v1`) is
    not found: the API's paths are appended to that path, and a path the API does not
    have makes every call a 404, which would otherwise read as an id not found."""
    if base_url is None or not url_setting or base_url.path.rstrip("/") == "":
        return None
    path = printable(base_url.path.rstrip("/"))
    return (f"; {url_setting} has the path {path}, which comes before each of the API's "
            f"paths: check it is the API's base URL (usually the host alone, "
            f"{printable(f'{base_url.scheme}://{base_url.netloc.decode()}')})")


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    address: str = "",
    operation: str = "",
    ok: tuple[int, ...] = (),
    origin: str = "",
    summarise: Summariser | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request; return the response when 2xx (or in `ok`), else raise the mapped error.
    `origin` names what a failure to connect could not reach, where `url` is absolute.
    `summarise`: the platform's error envelope in a few words (`error_summary`)."""
    what = operation or f"{method} {url}"
    where = origin or client.base_url
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(
            f"{what}: timed out ({type(exc).__name__}) at {where}",
            address=address,
            operation=operation,
        ) from exc
    except AskedToWait as exc:
        raise ProviderUnavailable(
            f"{what}: {exc}", address=address, operation=operation, retry_after=exc.left
        ) from exc
    except (CertificateNotVerified, NoTlsSpoken, ProxyAuthRequired) as exc:
        raise ProviderAuthError(
            f"{what}: cannot reach {where}: {exc}", address=address, operation=operation
        ) from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailable(
            f"{what}: cannot reach {where}: {exc or type(exc).__name__}",
            address=address,
            operation=operation,
        ) from exc
    if response.is_success or response.status_code in ok:
        return response
    raise error_for(response, address=address, operation=operation,
                    summary=error_summary(response, summarise), base_url=client.base_url,
                    url_setting=getattr(client, "url_setting", ""))


def error_summary(response: httpx.Response, summarise: Summariser | None) -> str | None:
    """The platform's error said in a few words by `summarise`, instead of the JSON it came
    in; None (the body is quoted) without one, or for a body not of the platform's shape."""
    if summarise is None:
        return None
    try:
        body = decoded(response)
    except (ValueError, httpx.ResponseNotRead):  # json_text.TooComplex too: quoted instead
        return None
    said = summarise(body)
    return said or None


def code_and_message(body: Any, code_key: str) -> str | None:
    """`CODE: message` of an error envelope that is one JSON object with the code under
    `code_key` and a `message` (Novacore's `error`, Flatpeak's `code`); None otherwise."""
    if not isinstance(body, dict):
        return None
    parts = [body.get(code_key), body.get("message")]
    said = [str(part) for part in parts if isinstance(part, (str, int)) and str(part)]
    return ": ".join(said) or None


async def send_json(client: httpx.AsyncClient, method: str, url: str | httpx.URL, *,
                    address: str = "", operation: str = "", ok: tuple[int, ...] = (),
                    origin: str = "", summarise: Summariser | None = None,
                    **kwargs: Any) -> Any:
    """`send`, then the decoded JSON answer: None for an empty body, a 204, or an error
    status the caller accepts in `ok` (e.g. 404 on a delete of what is already gone)."""
    response = await send(client, method, url, address=address, operation=operation, ok=ok,
                          origin=origin, summarise=summarise, **kwargs)
    if response.status_code == 204 or response.status_code in ok or not response.content:
        return None
    return json_body(response, operation=operation)


class _NoJsonNumber(ValueError):
    """NaN, Infinity or -Infinity, which Python's decoder takes but JSON has not, or a
    number beyond a double (1e999), which it would read as Infinity."""


def _no_constant(name: str) -> Any:
    raise _NoJsonNumber(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NoJsonNumber(text)
    return value


# One decoder for every answer: `json.loads` given hooks builds a decoder, and its scanner,
# at each call (a sixth of the decoding of a gateway's answer).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def decoded(response: httpx.Response) -> Any:
    """The JSON value of `response`'s body. A ValueError for a body that is not JSON, or
    holds a number `_NoJsonNumber` names; `json_text.TooComplex`, one that says why, for
    arrays or objects nested too deeply or a number too long to read (a RecursionError, or
    Python's advice to raise its limit on digits, was no answer to tell a user)."""
    # As `json.loads` reads bytes: UTF-8, -16 or -32, told by the first bytes.
    content = response.content
    return json_text.loads(content.decode(json.detect_encoding(content), "surrogatepass"),
                           _DECODER)


def json_body(response: httpx.Response, *, operation: str = "") -> Any:
    """Decode a JSON body; a malformed one is a rejected (non-retryable) answer. So is
    one with a number `_NoJsonNumber` names: read, it would reach the plan's JSON as a
    value no other JSON reader (jq, JavaScript) accepts; and one past what the parser
    reads (`json_text`), said in words."""
    try:
        return decoded(response)
    except json_text.TooComplex as exc:
        raise ProviderRejected(
            f"{operation}: the answer holds {exc}: {_body_excerpt(response)}",
            operation=operation,
            status=response.status_code,
        ) from None
    except _NoJsonNumber as exc:
        raise ProviderRejected(
            f"{operation}: the answer holds {printable(clipped(str(exc), 40))}, which is no JSON "
            f"number: {_body_excerpt(response)}",
            operation=operation,
            status=response.status_code,
        ) from exc
    except ValueError as exc:
        raise ProviderRejected(
            f"{operation}: the answer is not JSON: {_body_excerpt(response)}",
            operation=operation,
            status=response.status_code,
        ) from exc


def expect_object(value: Any, *, operation: str) -> dict[str, Any]:
    """A JSON object answer, or ProviderRejected naming the operation."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProviderRejected(
            f"{operation}: expected a JSON object, got {type(value).__name__}", operation=operation
        )
    return value


def expect_list(value: Any, *, operation: str) -> list[dict[str, Any]]:
    """A JSON array answer (of objects), or ProviderRejected naming the operation."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProviderRejected(
            f"{operation}: expected a JSON array, got {type(value).__name__}", operation=operation
        )
    return value
