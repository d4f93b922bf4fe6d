"""Options shared by the whole test suite.

`--update-golden` rewrites the golden files under tests/golden/ from the current output
instead of comparing with them (review the diff before committing it).

The proxy variables of the machine running the tests are cleared for the whole run: the
reconciler honours them (`providers.proxy`), and the simulators on loopback would otherwise
be called through a proxy of that machine unless its NO_PROXY lists loopback. The tests of
proxies set their own (tests/engine/test_proxy.py).

The package is compiled to bytecode once, before any test runs: the tests start hundreds of
processes running it (the command line, the operator, the simulators), and where
PYTHONDONTWRITEBYTECODE is set (as in many CI images) none of them writes what it
compiled, so each compiled every module it imports again, a fraction of a second of CPU
per process.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, before xdist starts its workers
        compileall.compile_dir(PACKAGE, quiet=1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output instead of comparing")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
