"""What the libraries the CLI uses log of their own: nothing, unless asked for.

pymodbus logs its connection failures ("Failed to connect ...", "Repeating....") as
warnings, and its frames as hex dumps at debug level, to a logger nothing configures, so
Python's last-resort handler printed them on stderr between the reconciler's own lines,
which say the same with the device's address and what the plan does about it. The CLI
keeps them out (`quiet`); `operator --verbose`, the one debug option, shows them with its
own log lines (`shown`)."""

from __future__ import annotations

import logging

# Every logger of pymodbus is below this one (`pymodbus.logging` writes the messages).
_LIBRARIES = ("pymodbus",)


def quiet() -> None:
    """Nothing the libraries log reaches stderr: no record is made (the hex dump of a frame
    is not even formatted), and none is passed to the root logger's handlers."""
    for name in _LIBRARIES:
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False


def shown() -> None:
    """The libraries' records go to the root logger's handlers again, at its level (debug
    for `operator --verbose`), as they would had `quiet` not been called."""
    for name in _LIBRARIES:
        logger = logging.getLogger(name)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
