"""`plan.actions.defer`: a planned change made a deferral keeps the action it would take
(`deferred_action`), also when deferred again, and says it; one of an object not read, or
planned as a deferral, has none; the plan document gives it as `deferred_actions`,
encoded as `actions` are."""

from __future__ import annotations

from reconciler.plan.actions import Action, Change, Reason, defer
from reconciler.plan.document import change_entry


def _release() -> Change:
    return Change.new("Gateway", "zap-1", "novacore", Action.RELEASE, Reason.DELETION_POLICY,
                      before={"serial": "zap-1", "org_id": "org-a"})


def test_a_deferred_change_keeps_its_action_also_when_deferred_again() -> None:
    change = _release()
    defer(change, "the sites of org-a could not be listed", unread=False)
    assert (change.action, change.deferred_action) == (Action.DEFER, Action.RELEASE)
    assert change.message == "would release; deferred: the sites of org-a could not be listed"
    defer(change, "a device bound to it is deferred", unread=False)
    assert (change.action, change.deferred_action) == (Action.DEFER, Action.RELEASE)
    assert change.message == "would release; deferred: a device bound to it is deferred"
    entry = change_entry(change)
    assert (entry["actions"], entry["deferred_actions"]) == (["defer"], ["release"])


def test_a_deferral_of_what_is_not_known_has_no_action() -> None:
    unread = _release()
    defer(unread, "gateway offline", unread=True)
    planned = Change.new("Site", "s", "novacore", Action.DEFER, Reason.TARGET_UNREACHABLE)
    defer(planned, "organisation not read", unread=False)
    for change in (unread, planned):
        assert change.action is Action.DEFER and change.deferred_action is None
        assert change_entry(change)["deferred_actions"] is None
    assert planned.message == "deferred: organisation not read"


def test_a_deferred_replace_is_encoded_as_a_replace_is() -> None:
    change = Change.new("Device", "d", "zap", Action.REPLACE, Reason.CANNOT_UPDATE)
    defer(change, "gateway offline", unread=False)
    assert change_entry(change)["deferred_actions"] == ["delete", "create"]
    assert change_entry(_release())["deferred_actions"] is None, "no deferral"
