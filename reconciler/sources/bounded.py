"""Reading a file of at most a given size, for every file the reconciler reads whole: the
desired state, a saved plan, the settings and gateway-URL files, secrets, the CA bundle
and the state directory's files. A larger one is refused before it is read, by the size
the system gives it, or once one byte more than the limit has come (a file that grew
meanwhile, or one whose size the system says is 0: a file of /proc). Each caller picks the
limit of its kind of file and says what a file of that kind is.

Only a regular file is read: a FIFO, socket or device is refused unread (`NotARegularFile`).
Opening a FIFO nobody writes to waits for a writer, forever, and a device such as /dev/zero
never ends: neither is a saved file of any kind read here. The check is made on the opened
descriptor, opened without waiting, so a file swapped for a FIFO after a check of its
name cannot make the open wait either.

The exception is a file of settings or a credential read once (`pipe=True`): a FIFO or pipe
is how `--config <(sops -d settings.toml)` and `sops exec-file` hand decrypted settings
over without writing them to disk. It is read to its end, but waited on for at most
PIPE_WAIT_SECONDS in all: a FIFO nobody writes to is an error, not a wait for ever."""

from __future__ import annotations

import errno
import os
import select
import stat
import time
from typing import BinaryIO

# Why a FIFO, socket or device is not read, for messages: "cannot read X: <this>".
NOT_REGULAR = "not a regular file (a FIFO, socket or device)"


class NotARegularFile(OSError):
    """A FIFO, socket or device where a file is read: refused before a byte is read.
    An OSError (its `strerror` is `NOT_REGULAR`), so that a reader's handling of a file
    that cannot be read covers it and names the file."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EINVAL, NOT_REGULAR, path)


class FileTooLarge(ValueError):
    """A file larger than its kind may be, not read. `str()` names the file, its size
    (when known) and the limit; `reason` says the same without the file's name."""

    def __init__(self, path: str, size: int | None, limit: int, what: str) -> None:
        self.path, self.size, self.limit, self.what = path, size, limit, what
        super().__init__(f"{path} {self.reason}")

    @property
    def reason(self) -> str:
        limit = f"the {amount(self.limit)} {self.what} may hold"
        if self.size is None:
            return f"holds more than {limit}"
        return f"is {measure(self.size)}, more than {limit}"


# How long a pipe read with `pipe=True` may take in all: a program decrypting settings
# (sops) writes them in well under a second; a FIFO nobody writes to never ends.
PIPE_WAIT_SECONDS = 10.0


def read_at_most(
    path: str | os.PathLike[str], limit: int, what: str, *, pipe: bool = False
) -> bytes:
    """The bytes of the file at `path`; FileTooLarge when it holds more than `limit` bytes
    (`what` names its kind, as in "a saved plan"), OSError when it cannot be read, and
    NotARegularFile (an OSError) when it is no regular file: with `pipe`, a FIFO or pipe
    is read too, to its end (see the module)."""
    with open_regular(path, pipe=pipe) as file:
        if stat.S_ISFIFO(os.fstat(file.fileno()).st_mode):
            return _read_pipe(file.fileno(), os.fspath(path), limit, what)
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise FileTooLarge(os.fspath(path), size, limit, what)
        # At most one byte more than allowed, whatever the size said.
        data = file.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(os.fspath(path), None, limit, what)
    return data


def open_regular(path: str | os.PathLike[str], *, pipe: bool = False) -> BinaryIO:
    """The regular file at `path`, opened for reading (binary); NotARegularFile when it is
    a FIFO, socket or device, IsADirectoryError for a directory (as `open` says it), any
    other OSError when it cannot be opened. Never waits: O_NONBLOCK makes opening a FIFO
    return at once, and the descriptor's own type is checked, so no race with a check of
    the name. A regular file ignores O_NONBLOCK; it is cleared all the same. With `pipe`,
    a FIFO or pipe is opened too, left non-blocking (`_read_pipe` reads it)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if pipe and stat.S_ISFIFO(mode):
            return os.fdopen(descriptor, "rb", buffering=0)
        if not stat.S_ISREG(mode):
            raise NotARegularFile(os.fspath(path))
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _read_pipe(descriptor: int, path: str, limit: int, what: str) -> bytes:
    """All a FIFO or pipe gives until its writer closes it, waiting PIPE_WAIT_SECONDS at
    most in all. On Linux, a FIFO no writer has opened yet polls as not ready (a writer
    that opens it later, as `sops exec-file` does, is waited for), and as ready once the
    last writer has closed it (read then gives the end)."""
    deadline = time.monotonic() + PIPE_WAIT_SECONDS
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise OSError(
                errno.ETIMEDOUT,
                f"a FIFO or pipe that gave {'no end' if chunks else 'nothing'} in "
                f"{PIPE_WAIT_SECONDS:g} s: it is read once, to its end, from a program "
                "writing to it (such as `<(sops -d FILE)`); name a regular file otherwise",
                path,
            )
        try:
            chunk = os.read(descriptor, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(path, None, limit, what)


def amount(size: int) -> str:
    """A limit, in the unit it was set in: "64 KiB", "4 MiB"."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


def measure(size: int) -> str:
    """A file's size, to one decimal and exactly: "4.0 MiB (4,194,305 bytes)"."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"
