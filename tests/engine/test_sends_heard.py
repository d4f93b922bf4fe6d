"""`sends.record_sends` notes a wait as heard only when the engine keeps it
(`HostWaits.heard`): the tests of waits built on it cannot pass on a Retry-After the
engine read as no wait at all."""

from __future__ import annotations

import httpx
import pytest
from sends import record_sends

from reconciler.engine.host_waits import HostWaits

URL = httpx.URL("http://127.0.0.1:8081/sites")


def _answer(status: int, retry_after: str) -> httpx.Response:
    return httpx.Response(status, headers={"Retry-After": retry_after})


@pytest.mark.parametrize("status,retry_after", [
    (429, "0"),
    (503, "soon"),
    (404, "30"),
])
def test_a_retry_after_the_engine_keeps_no_wait_for_is_not_noted(
    monkeypatch: pytest.MonkeyPatch, status: int, retry_after: str
) -> None:
    sends, waits = record_sends(monkeypatch), HostWaits()
    waits.heard(URL, _answer(status, retry_after))
    assert waits.held() == 0
    assert sends.heard(str(URL)) == [], sends.events


def test_a_wait_ending_before_the_one_kept_is_not_noted(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    sends, waits = record_sends(monkeypatch), HostWaits()
    waits.heard(URL, _answer(429, "60"))
    waits.heard(URL, _answer(503, "1"))
    waits.heard(URL, _answer(429, "120"))
    assert len(sends.heard(str(URL))) == 2, sends.events
