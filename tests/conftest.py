"""Options shared by the whole test suite.

`--update-golden` rewrites the golden files under tests/golden/ from the current output
instead of comparing with them (review the diff before committing it).

The proxy variables of the machine running the tests are cleared for the whole run: the
reconciler honours them (`providers.proxy`), and the simulators on loopback would otherwise
be called through a proxy of that machine unless its NO_PROXY lists loopback. The tests of
proxies set their own (tests/engine/test_proxy.py).
"""

from __future__ import annotations

import os

import pytest

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output instead of comparing")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
