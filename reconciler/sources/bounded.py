"""Reading a file of at most a given size, for every file the reconciler reads whole: the
desired state, a saved plan, the settings and gateway-URL files, secrets, the CA bundle
and the state directory's files. A larger one is refused before it is read, by the size
the system gives it, or once one byte more than the limit has come (a file that grew
meanwhile, or one whose size the system does not know: a pipe, /dev/zero, /proc). Each
caller picks the limit of its kind of file and says what a file of that kind is."""

from __future__ import annotations

import os


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


def read_at_most(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of the file at `path`; FileTooLarge when it holds more than `limit` bytes
    (`what` names its kind, as in "a saved plan"), OSError when it cannot be read."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise FileTooLarge(os.fspath(path), size, limit, what)
        # At most one byte more than allowed, whatever the size said.
        data = file.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(os.fspath(path), None, limit, what)
    return data


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
