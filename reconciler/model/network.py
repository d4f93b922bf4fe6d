"""Checks of the network addresses the desired state and the settings take: URLs of
gateways and clouds. A URL shows up in plans, errors and logs, so one that carries a user
name or password would spread that secret: it is refused, and never repeated in the message.
"""

from __future__ import annotations

from urllib.parse import urlsplit

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
    return f"{shown_url(value)!r} holds a user name or password: {CREDENTIALS_ADVICE}"
