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
per process. So are the test modules, their assertions rewritten as pytest rewrites them:
pytest caches that only where it may write bytecode, so each xdist worker, collecting the
whole suite, rewrote every test module again, some 15 s of CPU a worker. The tests that
take longest run first (`LONG_FIRST`), and those that mostly wait are spread among the
others (`MOSTLY_WAITING`).
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "reconciler"

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, before xdist starts its workers
        compileall.compile_dir(PACKAGE, quiet=1)
        _cache_rewritten_test_modules(config)


def _cache_rewritten_test_modules(config: pytest.Config) -> None:
    """Write pytest's cache of each test module and conftest with its assertions rewritten,
    where it is missing or stale, as pytest itself writes it when it may write bytecode,
    before xdist starts its workers: they then read it instead of each rewriting the
    module. pytest offers no public call for it: its rewriting module's functions are
    used, and a pytest whose functions moved or changed leaves the workers rewriting as
    before."""
    if config.getoption("assertmode") != "rewrite" or not config.getoption(
            "numprocesses", default=None):
        return  # no workers to save it for: the one process rewrites what it collects
    try:
        from _pytest.assertion import rewrite

        state = config.stash[rewrite.assertstate_key]
        for source in sorted(TESTS.rglob("*.py")):
            if not (source.name.startswith("test_") or source.name == "conftest.py"):
                continue
            cache = rewrite.get_cache_dir(source)
            pyc = cache / (source.name[:-3] + rewrite.PYC_TAIL)
            if rewrite._read_pyc(source, pyc) is not None or not rewrite.try_makedirs(cache):
                continue
            source_hash, code = rewrite._rewrite_test(source, config)
            rewrite._write_pyc(state, code, source_hash, pyc)
    except Exception:  # pytest's internals changed: nothing is cached, the workers rewrite
        return


# The tests that take longest (a minute or two alone, or a file of several taking half a
# minute each), run first: xdist gives each worker a slice of the collection in order, so
# one of these collected late (mypy with no cache, at `tests/test_code_quality.py`) kept
# its worker busy, and the machine half idle, long after the others were done. The first
# worker runs them one after the other while the rest share the other tests.
LONG_FIRST = (
    "tests/test_code_quality.py::test_static_check_passes[mypy]",
    "tests/engine/test_kill_soak.py::",
    "tests/operator/test_operator_deleted_mid_write.py::",
    "tests/sources/test_loader_fuzz.py::",
    "tests/watch/test_watch_vanished_file.py::",
    "tests/ci/test_json_contract.py::",
)


# Tests that mostly wait (kopf's timers and backoffs, the emulator's answers): a fifth of
# their time on a CPU, where the rest take a third or more. Collected together (one folder,
# over half the suite's time) they ended the run with every worker waiting on them and the
# machine's cores ~40 % idle for minutes; spread through the collection, every worker's
# slice mixes both.
MOSTLY_WAITING = ("tests/operator/",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONG_FIRST)
                     if item.nodeid.startswith(prefix)), len(LONG_FIRST))

    items[:] = _spread(items)
    items.sort(key=rank)  # stable: the order within each rank is kept


def _spread(items: list[pytest.Item]) -> list[pytest.Item]:
    """The modules of tests that mostly wait spread evenly among the others, each module's
    tests kept together and in order (module-scoped fixtures are made once a worker)."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    waiting = [m for m in modules if m.startswith(MOSTLY_WAITING)]
    others = [m for m in modules if not m.startswith(MOSTLY_WAITING)]
    # Each module at its place within its own kind (0 to 1), the two kinds merged by it.
    place = {m: (i + 0.5) / len(kind) for kind in (waiting, others) for i, m in enumerate(kind)}
    return [item for module in sorted(modules, key=place.__getitem__)
            for item in modules[module]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output instead of comparing")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
