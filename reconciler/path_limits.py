"""What a file system takes in a path: how long a name between slashes and a whole path may
be, and no NUL byte. A path the settings or the desired state give is checked against
these before it is used, so that it is refused naming where it came from, rather than
failing the first `stat` of it (`File name too long`) wherever that happens to be."""

from __future__ import annotations

from reconciler.printable import echo

# Linux's NAME_MAX and PATH_MAX (with its NUL), the limits of the file systems that hold
# state directories and mounted volumes.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def path_problem(path: str) -> str | None:
    """Why no file system takes `path`, or None. Said of `path` as `file 'x' ...`-less
    text: the caller names the setting or field."""
    if "\0" in path:
        return f"{echo(path)} holds a NUL character, which no file name may"
    for part in path.split("/"):
        size = len(part.encode())
        if size > MAX_NAME_BYTES:
            which = "" if part == path else f" ({echo(part)})"
            return (f"{echo(path)} has a name of {size:,} bytes{which}; a file or directory "
                    f"name holds at most {MAX_NAME_BYTES} bytes (UTF-8): shorten it")
    size = len(path.encode())
    if size >= MAX_PATH_BYTES:
        return (f"{echo(path)} is {size:,} bytes long; a path holds at most "
                f"{MAX_PATH_BYTES - 1:,} bytes (UTF-8)")
    return None
