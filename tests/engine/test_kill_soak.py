"""A short run of the crash-safety soak (`benchmarks/kill_soak.py`), with a fixed seed: the
example fleet applied by `reconciler apply` subprocesses that are interrupted (SIGKILL, or
SIGINT and SIGTERM twice) about ten times, at random moments, in a fresh world, during a
`--prune` and during Site renames, and then applied whole. No duplicate, nothing declared
missing, a no-op apply after it, nothing left unsettled in the state directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from kill_soak import describe, soak

pytestmark = pytest.mark.slow


def test_applies_interrupted_at_random_moments_converge_with_no_duplicate(
        tmp_path: Path) -> None:
    scenarios = soak(10, seed=20261205, latency_ms=120, jitter_ms=60, work=tmp_path,
                     echo=False)
    assert sum(s.kills for s in scenarios) >= 10
    assert {s.kind for s in scenarios} == {"fresh", "prune", "rename", "signals"}
    failed = [describe(s) for s in scenarios if s.problems]
    assert not failed, "\n".join(failed)
