"""Enapter Cloud and Flatpeak in the engine: one observer that reads both concurrently
(registered in `observe.EXTRA_OBSERVERS`) and their executors (registered in
`execute.EXTRA_EXECUTORS`). Importing this module registers them; `engine.reconcile` does,
so every entry point gets them. The platforms themselves live in `engine.enapter` and
`engine.flatpeak`."""

from __future__ import annotations

from reconciler.engine import enapter, execute, flatpeak, observe
from reconciler.engine.fanout import all_of
from reconciler.engine.gather import Gather
from reconciler.engine.retry import RetryPolicy
from reconciler.engine.session import Session
from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Audience
from reconciler.plan.observed import Observed


async def observe_platforms(
    fleet: Fleet,
    session: Session,
    observed: Observed,
    policy: RetryPolicy,
    whole_fleet: Fleet,
    audience: Audience,
) -> None:
    """Read Enapter and Flatpeak concurrently; rejected credentials raise after both.
    `audience`: who what the state directory holds is said to, when it cannot be read."""
    gather = Gather(policy)
    await all_of(
        enapter.observe_enapter(fleet, session, observed, gather, whole_fleet, audience),
        flatpeak.observe_flatpeak(fleet, session, observed, gather),
    )
    if gather.auth_errors:
        raise gather.auth_errors[0]


observe.EXTRA_OBSERVERS.append(observe_platforms)
execute.EXTRA_EXECUTORS.update(enapter.EXECUTORS)
execute.EXTRA_EXECUTORS.update(flatpeak.EXECUTORS)
