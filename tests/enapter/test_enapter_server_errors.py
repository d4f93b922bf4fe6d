"""An Enapter server error (5xx) is said as the platform's `{"errors": [...]}` envelope
gives it, `CODE: message` after the status, as a 4xx is, never as the JSON it came in; the
engine then says what follows (deferred, or given up after its attempts). Against the
Enapter simulator on loopback, whose faults answer with that envelope."""

from __future__ import annotations

import pytest
from enapter_world import MakeWorld, failures, fleet_of, pending, renderings, site_and_gateway, ucm

from reconciler.plan.actions import Action

# The simulator's fault, as its envelope says it.
SAID = "HTTP 503: UNAVAILABLE: Service temporarily unavailable (simulated fault)"


def _no_envelope(text: str) -> None:
    """No trace of the envelope's JSON: its code as a quoted value, plain or escaped."""
    assert 'UNAVAILABLE"' not in text and 'UNAVAILABLE\\"' not in text, text


async def test_a_5xx_read_defers_with_the_platforms_code_and_message(
        make_world: MakeWorld) -> None:
    world = await make_world(site_and_gateway() + ucm())
    await world.converge()
    world.sims.enapter.faults.update({"error_status": 503, "fail_next": 100})
    result = await world.plan()
    deferred = pending(result)["site/lab[enapter]"]
    assert deferred.action is Action.DEFER
    assert deferred.message == (
        f"its state is not known; deferred: Enapter sites: enapter.list_sites /v3/sites: "
        f"{SAID} (gave up after 2 attempts)")
    said = renderings(result)  # the JSON plan, its text and its Markdown
    assert said.count(SAID) >= 3, said
    _no_envelope(said)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_write_fails_with_the_platforms_code_and_message(
        make_world: MakeWorld, status: int) -> None:
    world = await make_world(site_and_gateway() + ucm())
    await world.converge()
    renamed = fleet_of(site_and_gateway() + ucm(display="Renamed UCM"))
    world.sims.enapter.faults.update({"error_status": status, "lose_next": 100})
    _, report = await world.apply(renamed)
    [failed] = failures(report)
    assert failed["address"] == "device/lab-ucm[enapter]"
    message = str(failed["message"])
    assert f"HTTP {status}: UNAVAILABLE: Service temporarily unavailable (simulated fault)" \
        in message, message
    assert message.endswith("(gave up after 2 attempts)"), message
    _no_envelope(message)
