"""What `reconciler apply` and the watch agent say, in the same words, about the writes an
earlier run left unfinished (journal intents with no outcome: `StateDir.unfinished`), and
what a reader that takes no lock says instead when another process holds it.

Each write is named by its address and operation, the only things an intent says about
it besides its action and time: no value that was sent (a password, a token) is ever in
the journal, and none is shown. Addresses carry names and serials from gateways and
clouds, so they are shown through `printable`.
"""

from __future__ import annotations

from typing import Any

from reconciler.printable import printable


def heading(unfinished: list[dict[str, Any]], *, plan_only: bool = False) -> str:
    """The line before the list of `writes`."""
    then = "the plan observes what they did" if plan_only else (
        "the state is observed again before anything is applied"
    )
    return f"{len(unfinished)} write(s) of an earlier run were interrupted; {then}:"


def writes(unfinished: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The interrupted writes, each as {address, operation, action, started} (the journal's
    other keys left out on purpose: only what names the write is shown)."""
    return [
        {
            "address": str(record.get("address", "")),
            "operation": str(record.get("operation", "")),
            "action": str(record.get("action", "")),
            "started": str(record.get("ts", "")),
        }
        for record in unfinished
    ]


def lines(unfinished: list[dict[str, Any]]) -> list[str]:
    """One line per interrupted write: `  address operation (started TIME)`."""
    return [
        f"  {printable(write['address'])} {printable(write['operation'])}"
        + (f" (started {printable(write['started'])})" if write["started"] else "")
        for write in writes(unfinished)
    ]


def held_elsewhere(holder: str) -> str:
    """For a reader that takes no lock while `holder` (the lock file's line) holds it: the
    journal's unfinished writes may be that process's writes in flight, not interrupted."""
    return (
        f"another process is applying: the state directory is locked by {holder}; the "
        "writes it has not finished are not reported as interrupted"
    )
