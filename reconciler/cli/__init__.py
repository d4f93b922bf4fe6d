"""Command-line entry points: argument parsing and output only; decisions live below."""

import sys

# httpx imports its own command line (`httpx._main`) whenever click, rich and pygments
# can be imported (kopf brings click; many environments have the other two): ~0.1 s of
# every start of this command line, which never runs httpx's. None in `sys.modules` makes
# that import fail, and httpx then goes without it (its `main` says what to install).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
