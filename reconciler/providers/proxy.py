"""Which HTTP proxy, if any, a request goes through, from the variables curl, kubectl, pip
and Terraform's providers read: `HTTPS_PROXY` for https:// URLs, `HTTP_PROXY` for http://
ones, `ALL_PROXY` for either where that one is unset (each in lowercase too, which wins),
and `NO_PROXY`, the hosts reached directly. Pure: the variables are read once, by
`Proxies.from_environ`, and each URL's choice is kept.

`NO_PROXY` is a list separated by commas (or spaces); each entry is one of:
- `*`: every host is reached directly;
- a host name, which matches itself and every name under it: `example.com`,
  `.example.com` and `*.example.com` alike match `example.com` and `api.example.com`
  (as curl has it);
- an IP address (`192.168.1.20`, `::1` or `[::1]`), which matches a URL naming that
  address;
- a CIDR range (`192.168.0.0/16`, `fd00::/8`), which matches a URL naming an address in
  it. A host name is never resolved to match a range, as curl and Go do not;
- any of those but a range with `:port`, which matches that port only.
A range that is no range (`10.0.0.0/33`) is refused, naming the variable: taken as a host
name it would match nothing, and the gateways it meant would be called through the proxy.
Loopback is not reached directly unless listed (as with curl and httpx).

The proxy is spoken to in plain HTTP (`http://host:port`, `http://` assumed when absent);
an https:// URL goes through a CONNECT tunnel, inside which TLS is verified against the
server's name as without a proxy. Credentials in the proxy URL (`http://user:pass@host`)
are sent as Proxy-Authorization and kept apart from the URL, which is all that messages
show.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.network import shown_url
from reconciler.printable import echo

# In the order they are looked at for each scheme of the URL called: the first set wins.
_PROXY_VARIABLES = {
    "https": ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"),
    "http": ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"),
}
_NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")
_DEFAULT_PORTS = {"http": 80, "https": 443}

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxySettingError(ValueError):
    """Proxy variables that cannot be used: `problems` holds (variable, why and what would
    be valid) of each, a proxy URL shown without its credentials."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class Proxy:
    """A proxy to call through. `url` holds no credentials: it is what messages show."""

    url: str
    variable: str
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"the proxy {self.url} (from {self.variable})"


@dataclass(frozen=True)
class _Bypass:
    """One entry of NO_PROXY: a domain, or an address range, and maybe a port."""

    domain: str = ""
    network: IpNetwork | None = None
    port: int | None = None

    def matches(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address in self.network
        # A name is matched by name only: 4.1.2.3 is not under a domain "1.2.3".
        return address is None and (host == self.domain or host.endswith("." + self.domain))


@dataclass(frozen=True)
class Proxies:
    """The proxy of each scheme and the hosts that bypass it. The default: none."""

    http: Proxy | None = None
    https: Proxy | None = None
    bypass: tuple[_Bypass, ...] = ()
    bypass_all: bool = False
    _chosen: dict[tuple[str, str, int], Proxy | None] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def configured(self) -> bool:
        return self.http is not None or self.https is not None

    def for_url(self, scheme: str, host: str, port: int | None) -> Proxy | None:
        """The proxy a request to scheme://host:port goes through, or None (directly)."""
        if not self.configured:
            return None
        key = (scheme, host, port or _DEFAULT_PORTS.get(scheme, 0))
        if key not in self._chosen:
            # Every call of a run asks (thousands), for a few hosts: the answer is kept.
            self._chosen[key] = self._choose(*key)
        return self._chosen[key]

    def _choose(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http if scheme == "http" else None
        if proxy is None or self.bypass_all:
            return None
        host = host.strip("[]").rstrip(".").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if any(entry.matches(host, address, port) for entry in self.bypass):
            return None
        return proxy

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Proxies:
        """The proxies the variables name (an empty variable counts as unset);
        ProxySettingError naming every proxy URL and NO_PROXY entry that cannot be used."""
        problems: list[tuple[str, str]] = []
        chosen: dict[str, Proxy | None] = {}
        for scheme, names in _PROXY_VARIABLES.items():
            name = next((n for n in names if environ.get(n, "").strip()), None)
            try:
                chosen[scheme] = None if name is None else _proxy(name, environ[name].strip())
            except ValueError as exc:
                assert name is not None
                if (name, str(exc)) not in problems:  # ALL_PROXY serves both schemes
                    problems.append((name, str(exc)))
        no_proxy = next((n for n in _NO_PROXY_VARIABLES if environ.get(n, "").strip()), "")
        entries = environ[no_proxy].replace(",", " ").split() if no_proxy else []
        bypass = []
        for entry in entries:
            try:
                bypass.append(_bypass(entry))
            except ValueError as exc:
                problems.append((no_proxy, str(exc)))
        if problems:
            raise ProxySettingError(problems)
        return cls(http=chosen.get("http"), https=chosen.get("https"), bypass=tuple(bypass),
                   bypass_all="*" in entries)


def _proxy(variable: str, value: str) -> Proxy:
    text = value if "://" in value else "http://" + value
    shown = echo(shown_url(value))
    scheme = text.partition("://")[0].lower()
    if scheme != "http":
        which = f"{scheme}:// proxies are not supported; " if scheme.isalnum() else ""
        raise ValueError(
            "expected an http:// proxy URL (e.g. http://proxy.example.com:3128); "
            f"{which}got {shown}"
        )
    try:
        parts = urllib.parse.urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host:
        raise ValueError(
            f"expected a proxy URL with a host and maybe a port (e.g. "
            f"http://proxy.example.com:3128), got {shown}"
        )
    netloc = f"[{host}]" if ":" in host else host
    return Proxy(
        url=f"http://{netloc}:{port or 80}",
        variable=variable,
        username=urllib.parse.unquote(parts.username or ""),
        password=urllib.parse.unquote(parts.password or ""),
    )


def _bypass(entry: str) -> _Bypass:
    text = entry.lower()
    port: int | None = None
    if text.startswith("["):  # [::1] or [::1]:8080
        text, _, rest = text[1:].partition("]")
        if rest:
            port = _port(entry, rest.removeprefix(":"))
    elif text.count(":") == 1:  # host:port, 10.0.0.1:8080 (an IPv6 address has more)
        text, _, rest = text.partition(":")
        port = _port(entry, rest)
    if "/" in text:
        try:
            return _Bypass(network=ipaddress.ip_network(text, strict=False), port=port)
        except ValueError:
            raise ValueError(
                f"{echo(entry)} is no address range; expected a CIDR range such as "
                "192.168.0.0/16 or fd00::/8, a host name, a domain (.example.com) or an IP "
                "address"
            ) from None
    try:
        return _Bypass(network=ipaddress.ip_network(text), port=port)
    except ValueError:
        pass
    domain = text.removeprefix("*").removeprefix(".").rstrip(".")
    return _Bypass(domain=domain, port=port)


def _port(entry: str, text: str) -> int:
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    raise ValueError(f"{echo(entry)} has no port number after ':'; expected host, host:port or "
                     "an IP address")
