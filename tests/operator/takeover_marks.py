"""What a takeover leaves on the object that took over (a renamed Device or Gateway, or one
refused for what another being deleted declared): once it has reconciled with the old
one gone, the `takes-over-from` annotation the old one's finalizer wrote is removed, and
kopf has handled that removal (`operator.takeovers`)."""

from __future__ import annotations

import json
from typing import Any

from harness import LAST_HANDLED, Cluster

from reconciler.operator.takeovers import TAKES_OVER_ANNOTATION


async def takeover_cleared(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    """The object, once its Ready condition is True, it carries no `takes-over-from`
    annotation, and kopf's record of what its handlers handled last has none either (the
    update that removed it was handled). Asked once the object is Ready after a takeover:
    before the annotation is written, the record has none too."""

    async def cleared() -> dict[str, Any] | None:
        body = await cluster.get(kind, name) or {}
        notes = (body.get("metadata") or {}).get("annotations") or {}
        handled = json.loads(notes.get(LAST_HANDLED) or "{}")
        handled_notes = (handled.get("metadata") or {}).get("annotations") or {}
        ready = [c for c in (body.get("status") or {}).get("conditions", [])
                 if c.get("type") == "Ready" and c.get("status") == "True"]
        if (ready and handled and TAKES_OVER_ANNOTATION not in notes
                and TAKES_OVER_ANNOTATION not in handled_notes):
            return body
        return None

    return await cluster.wait_for(  # type: ignore[no-any-return]
        cleared, what=f"{kind}/{name}'s {TAKES_OVER_ANNOTATION} removed, and that handled"
    )
