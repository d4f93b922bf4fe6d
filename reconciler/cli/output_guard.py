"""Standard output that a full disk, a failing device or a reader gone cannot turn into a
traceback, nor into a command stopped half-way.

`reconciler plan -o json > plan.json` on a full disk, or `apply ... | head`, fails a write
of stdout. Raised there, the error would stop an apply between an intent and its write
(the journal keeps that safe, but the run is cut short for the sake of its output) and
print a traceback. Instead the first failure is remembered, the rest of the output is
dropped, the command runs to its end, and `main` then says once that its output is
incomplete and exits 1. The watch agent has its own handling (`engine.watch.Log`: it
stops as on SIGTERM), so it is not given this guard."""

from __future__ import annotations

from typing import Any, TextIO


class GuardedOutput:
    """A stand-in for a text stream whose writes cannot raise `OSError`: `failure` says
    the first one ("" for a reader gone, a broken pipe), and later writes are dropped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failure: str | None = None

    def write(self, text: str) -> int:
        if self.failure is None:
            try:
                return self.stream.write(text)
            except OSError as error:
                self._failed(error)
        return len(text)

    def flush(self) -> None:
        if self.failure is None:
            try:
                self.stream.flush()
            except OSError as error:
                self._failed(error)

    def _failed(self, error: OSError) -> None:
        self.failure = "" if isinstance(error, BrokenPipeError) else (
            error.strerror or str(error))

    def __getattr__(self, name: str) -> Any:
        # isatty, fileno, encoding, reconfigure...: the stream's own.
        return getattr(self.stream, name)
