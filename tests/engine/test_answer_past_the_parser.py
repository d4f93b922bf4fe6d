"""A cloud answering JSON past what Python's parser reads (arrays or objects nested
deeper than its recursion limit, a number of more than 4,300 digits), on real simulators:
the site that read it is deferred saying what is wrong with the answer in words, as
`sources.json_text` says it of a file, not with the name of a Python error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from simworld import MakeWorld, standard_site

from reconciler.plan.actions import Action
from reconciler.sim.fleet import SimFleet
from reconciler.sources.json_text import NESTED_TOO_DEEPLY, NUMBER_TOO_LONG

DEEP = "[" * 100_000 + "]" * 100_000
LONG = '{"sites": [' + "9" * 5_000 + "]}"


def novacore_sites_answer(body: str, status: int) -> Callable[[SimFleet], None]:
    """A `before_start` making Novacore's GET /sites answer `body` with `status`."""

    def install(sims: SimFleet) -> None:
        @web.middleware
        async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method == "GET" and request.path == "/sites":
                return web.Response(text=body, status=status, content_type="application/json")
            return await handler(request)

        sims.novacore.app.middlewares.append(answer)

    return install


@pytest.mark.parametrize(("body", "said"), [(DEEP, NESTED_TOO_DEEPLY), (LONG, NUMBER_TOO_LONG)],
                         ids=["nested-too-deeply", "number-too-long"])
async def test_an_answer_past_the_parser_defers_the_site_saying_why_in_words(
        make_world: MakeWorld, body: str, said: str) -> None:
    world = await make_world(standard_site(1), before_start=novacore_sites_answer(body, 200))
    result = await world.plan()
    deferred = [c for c in result.plan.changes if c.action is Action.DEFER]
    assert deferred, [c.message for c in result.plan.changes]
    for change in deferred:
        assert f"the answer holds {said}: " in change.message, change.message
        assert "Error" not in change.message, change.message


async def test_an_error_answer_past_the_parser_is_quoted_not_a_python_error(
        make_world: MakeWorld) -> None:
    """An error's body is read for the platform's own words: one past the parser is quoted
    as any body not of the platform's shape is."""
    world = await make_world(standard_site(1), before_start=novacore_sites_answer(DEEP, 403))
    result = await world.plan()
    said = [c.message for c in result.plan.changes if "novacore.list_sites" in c.message]
    assert said, [c.message for c in result.plan.changes]
    for message in said:
        assert "novacore.list_sites /sites: HTTP 403: [[[[" in message, message
        assert "Error" not in message, message
