"""Fixtures of the operator tests."""

from __future__ import annotations

from collections.abc import Iterator

import harness
import pytest


@pytest.fixture
def runs() -> Iterator[harness.KopfRuns]:
    """kopf's lines of the handlers' and drift checks' runs during the test (`KopfRuns`)."""
    with harness.kopf_runs() as recorded:
        yield recorded
