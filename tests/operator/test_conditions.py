"""Conditions and events carry what gateways and clouds report; `kubectl describe` shows
them on a terminal, so they hold no character a terminal would act on."""

from __future__ import annotations

from reconciler.operator import conditions
from reconciler.operator.handlers import event_message


def test_a_condition_message_is_printable_and_bounded() -> None:
    failed = conditions.Cond("Ready", False, "ApplyFailed", "gateway said \x1b[2J" + "x " * 1000)
    [ready] = conditions.merge([], [failed], now="2026-11-22T00:00:00Z", generation=3)
    assert ready["message"].startswith("gateway said \\x1b[2Jx x x")
    assert "\x1b" not in ready["message"] and len(ready["message"]) == 1000
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "False", "ApplyFailed", 3)


def test_a_condition_keeps_its_transition_time_while_its_status_stays() -> None:
    first = conditions.merge([], [conditions.Cond("Ready", True, "Reconciled")],
                             now="t1", generation=1)
    again = conditions.merge(first, [conditions.Cond("Ready", True, "Reconciled", "ok")],
                             now="t2", generation=2)
    flipped = conditions.merge(again, [conditions.Cond("Ready", False, "ApplyFailed")],
                               now="t3", generation=2)
    assert [c["lastTransitionTime"] for c in (*first, *again, *flipped)] == ["t1", "t1", "t3"]


def test_anevent_message_is_printable_and_bounded() -> None:
    message = event_message("device/s1-zap.X\x1b]0;pwned\x07[zap]: delete failed" + " !" * 1000)
    assert message.startswith("device/s1-zap.X\\x1b]0;pwned\\x07[zap]: delete failed")
    assert len(message) == 1000 and "\x1b" not in message and "\x07" not in message


def test_only_observed_conditions_an_object_has_become_unknown() -> None:
    held = conditions.merge([], [conditions.Cond("Ready", True, "Reconciled"),
                                 conditions.Cond("Reachable", True, "Observed")],
                            now="t1", generation=1)
    unknown = conditions.unobserved(held, "InvalidSpec", "not observed")
    assert unknown == [conditions.Cond("Reachable", None, "InvalidSpec", "not observed")]
