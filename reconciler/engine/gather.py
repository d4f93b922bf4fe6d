"""One observation's reads of a platform: each read's answer, or why it could not be had
(`Unreachable`, `NoAccess` for an organisation the token may not see, or `NotTheApi` for a
listing every token has that was not found), so that one
read failing never stops the others. Rejected credentials are collected rather than
raised at once: the caller raises the first once every read it started has ended
(`engine.observe.observe`, `engine.platforms`), since retrying cannot fix them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from reconciler.engine.fanout import unexpected
from reconciler.engine.retry import RetryPolicy, retrying
from reconciler.errors import ProviderAuthError, ProviderError, ProviderRejected
from reconciler.plan.observed import NoAccess, NotTheApi, Unreachable

T = TypeVar("T")
A = TypeVar("A")  # an API's answer
R = TypeVar("R")  # the record made of it


class Gather:
    """Runs reads concurrently; records auth failures to raise after all finished. A read
    that fails otherwise is Unreachable, whatever the error: one read's answer must not
    stop the others (`engine.fanout`)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.auth_errors: list[ProviderAuthError] = []

    async def read(
        self, call: Callable[[], Awaitable[T]], *, org_scoped: bool = False, listing: str = ""
    ) -> T | Unreachable:
        """`call`'s answer, or why it could not be had. `org_scoped`: a read of one
        declared organisation, where a 403 or 404 says the token may not see that
        organisation (the other organisations answered, or will), not that the token is
        bad: a 401 still stops the run. `listing`: the URL setting of a read the API
        answers for every token (Enapter's sites), where a 404 says that URL is not the
        API's (`NotTheApi`), not that something is missing."""
        try:
            return await retrying(call, self.policy)
        except ProviderAuthError as exc:
            if org_scoped and exc.status == 403:
                return NoAccess(str(exc))
            self.auth_errors.append(exc)
            return Unreachable(str(exc))
        except ProviderRejected as exc:
            if org_scoped and exc.status == 404:
                return NoAccess(str(exc), url_setting=exc.url_setting)
            if listing and exc.status == 404:
                return NotTheApi(str(exc), url_setting=listing)
            return Unreachable(str(exc))
        except ProviderError as exc:
            return Unreachable(str(exc), retry_after=self.policy.asked_to_wait(exc))
        except Exception as exc:  # e.g. an answer of an undocumented shape: this read only
            return Unreachable(unexpected(exc))

    async def read_as(
        self,
        call: Callable[[], Awaitable[A]],
        convert: Callable[[A], R],
        *,
        org_scoped: bool = False,
        listing: str = "",
    ) -> R | Unreachable:
        """`read`, the answer converted to its record: an answer the conversion cannot take
        is as unreadable as one that did not come."""

        async def converted() -> R:
            return convert(await call())

        return await self.read(converted, org_scoped=org_scoped, listing=listing)
