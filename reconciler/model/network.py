"""Checks of the network addresses the desired state and the settings take: URLs of
gateways and clouds, and the hosts of Modbus TCP devices and MQTT brokers.

A URL shows up in plans, errors and logs, so one that carries a user name or password would
spread that secret: it is refused, and never repeated in the message. A host is a name per
RFC 1123 or an IP address; `999.1.1.1` or `192.168.1` is neither (the second is read as
192.168.0.1 by some parsers and refused by others), so it is refused where it is written
rather than failing, or reaching another machine, when the reconciler connects.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from reconciler.printable import echo

CREDENTIALS_ADVICE = (
    "credentials in a URL would be shown in plans, errors and logs; remove the "
    "`user:password@` part and give credentials through a Secret or an environment variable"
)


def shown_url(value: str) -> str:
    """`value` for a message, with everything up to the last `@` of the part after the
    scheme masked: the user name and password, and whatever a password holding `/`, `?` or
    `#` would leave of itself if only the authority were masked."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    if "@" not in rest:
        return value
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def has_userinfo(value: str) -> bool:
    """Whether the URL names a user (and maybe a password) before its host. An `@` later in
    the path or query is no part of it; one anywhere after the scheme is counted anyway when
    the URL cannot be split, so that a malformed URL with a password is not let through."""
    try:
        return "@" in urlsplit(value).netloc
    except ValueError:
        return "@" in value.partition("://")[2]


def userinfo_problem(value: str) -> str | None:
    """Why a URL with `user:password@` is refused (the password masked), or None."""
    if not has_userinfo(value):
        return None
    return f"{echo(shown_url(value))} holds a user name or password: {CREDENTIALS_ADVICE}"


def query_problem(value: str, examples: str) -> str | None:
    """Why a base URL with a query or fragment is refused (`examples`: what one looks
    like), or None. Paths are appended to a base URL: `http://host/?x=1` would call
    `http://host/?x=1/api/...`, the path lost in the query, and a fragment is never sent
    at all. Neither is what was meant, and the answer would say nothing of it."""
    if "?" not in value and "#" not in value:
        return None
    return ("expected a base URL without a query ('?...') or fragment ('#...'), as the API's "
            f"paths are appended to it (e.g. {examples}); got {echo(shown_url(value))}")


# One dot-separated part of a host name (RFC 1123): letters, digits and '-', at most 63
# characters, starting and ending with a letter or digit.
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
HOST_RULE = (
    "a host name (letters, digits and '-' in parts of at most 63 characters joined by dots, "
    "each starting and ending with a letter or digit), an IPv4 address (four numbers from 0 "
    "to 255, such as 192.168.1.60) or an IPv6 address"
)


def host_problem(host: str) -> str | None:
    """Why `host` (a name or an IP address, IPv6 without brackets) is not one, or None."""
    if ":" in host:
        return _ipv6_problem(host)
    labels = host.removesuffix(".").split(".")
    # A name never ends in a number: such a host is meant as an IPv4 address, and only the
    # four-number form means the same to every program that reads it.
    if labels[-1].isdigit():
        return _ipv4_problem(host)
    if not host.isascii():
        return (f"{echo(host)} is not a valid host: write a name with letters other than a-z in "
                "its ASCII form (xn--...)")
    if len(host.removesuffix(".")) > 253 or not all(map(_HOST_LABEL.fullmatch, labels)):
        return f"{echo(host)} is not a valid host: expected {HOST_RULE}"
    return None


def _ipv4_problem(host: str) -> str | None:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return (f"{echo(host)} is not a valid IPv4 address: expected four numbers from 0 to 255 "
                "joined by dots, without leading zeros (such as 192.168.1.60)")
    return None


def _ipv6_problem(host: str) -> str | None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return (f"{echo(host)} is not a valid host: expected {HOST_RULE} (the port, if any, goes "
                "in its own field)")
    return None


def _host(value: str) -> str:
    if value.startswith("[") and value.endswith("]"):
        raise ValueError(f"{echo(value)}: write an IPv6 address without the brackets")
    problem = host_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# The host of a device or broker: a name or an address, without a port.
Host = Annotated[str, AfterValidator(_host)]


def url_problem(value: str) -> str | None:
    """Why a URL that parses is still refused: credentials in it, or a host that is not
    one (an IPv6 host is written in brackets, as URLs have it)."""
    problem = userinfo_problem(value)
    if problem is not None:
        return problem
    try:
        parts = urlsplit(value)
    except ValueError:
        return None  # the URL parser reports it
    host = parts.hostname
    if not host:
        return None  # the URL parser reports it
    return _ipv6_problem(host) if "[" in parts.netloc else host_problem(host)
