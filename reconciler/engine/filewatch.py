"""The watch agent's file watching: watchfiles events on the desired-state files become
`notify(changed files)`, each named as the user gave the path it is under.

A watch follows what a name led to when it started, not the name: inotify watches an
inode. A watched folder removed and put back, or a `current` symlink flipped to another
release (`ln -sfn` and `mv -T`), leaves it on the old folder, deaf, and watchfiles raises
nothing. So each path is also watched where its name is listed: in its parent directory,
and in the directory of each symlink met on the way to it. When one of those names
changes (and every `recheck_s`, for an event that never comes: a parent directory itself
replaced), the paths are resolved again; a path that now leads elsewhere is a change, and
the watch starts over on what the paths lead to now.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from reconciler.sources.loader import is_yaml_name

# Symlinks followed while resolving one path before giving up, as the kernel does (ELOOP).
_MAX_LINKS = 40


async def wait_any(events: Iterable[asyncio.Event], seconds: float | None) -> None:
    """Return when any event is set or after `seconds`."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _links_on_the_way(path: str) -> list[str]:
    """The symlinks met resolving the absolute `path` (its last part included), each named
    through its resolved directory: where `ln -sfn` or `mv -T` changes it."""
    links: list[str] = []
    resolved = os.sep
    todo = list(reversed(path.split(os.sep)))
    while todo:
        part = todo.pop()
        if part in ("", os.curdir):
            continue
        if part == os.pardir:
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        try:
            target = os.readlink(candidate) if len(links) < _MAX_LINKS else None
        except OSError:  # not a link (or nothing there, or gone since)
            target = None
        if target is None:
            resolved = candidate
            continue
        links.append(candidate)
        if os.path.isabs(target):
            resolved = os.sep
        todo.extend(reversed(target.split(os.sep)))
    return links


def _inode(directory: str) -> tuple[int, int] | None:
    """Which directory is at `directory` now (None: none is)."""
    try:
        found = os.stat(directory)
    except OSError:
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISDIR(found.st_mode) else None


@dataclass(frozen=True)
class Watched:
    """One path given to watch, as it resolves now. Two resolutions differ when the path
    leads elsewhere: another target, or a directory on the way removed or put back."""

    given: str  # absolute, symlinks kept: the name the log uses
    target: str  # what it leads to, symlinks resolved
    directory: bool  # a directory (watched with all below it), else a file or nothing yet
    # Where the path's own name and those of the symlinks on the way are listed (resolved
    # directory + name): a change there can make the path lead elsewhere.
    entries: tuple[str, ...]
    # Of the target directory (or a file's directory) and of each entry's directory.
    inodes: tuple[tuple[int, int] | None, ...]

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Watched:
        given = os.path.abspath(path)
        target = os.path.realpath(given)
        directory = os.path.isdir(target)
        own = os.path.join(os.path.realpath(os.path.dirname(given)), os.path.basename(given))
        entries = tuple(dict.fromkeys([own, *_links_on_the_way(given)]))
        folders = [target if directory else os.path.dirname(target)]
        folders += [os.path.dirname(entry) for entry in entries]
        return cls(given, target, directory, entries, tuple(_inode(f) for f in folders))


@dataclass(frozen=True)
class WatchSet:
    """What to watch for the given paths: directories recursively (their YAML files), and
    without their subdirectories the directories where the paths are listed, and those of
    named files (editors save by writing a new file and renaming it over the old one,
    which ends a watch on the file itself)."""

    paths: tuple[Watched, ...]

    @classmethod
    def of(cls, paths: Iterable[str | os.PathLike[str]]) -> WatchSet:
        return cls(tuple(Watched.of(path) for path in paths))

    @property
    def roots(self) -> tuple[str, ...]:
        """The directories watched with everything below them."""
        return tuple(sorted({w.target for w in self.paths if w.directory}))

    @property
    def parents(self) -> tuple[str, ...]:
        """The directories of named files, watched without their subdirectories."""
        return tuple(sorted({os.path.dirname(w.target) for w in self.paths if not w.directory}))

    @property
    def listings(self) -> tuple[str, ...]:
        """The other directories where the paths or symlinks on their way are listed,
        watched without their subdirectories."""
        found = {os.path.dirname(entry) for watched in self.paths for entry in watched.entries}
        return tuple(sorted(found - set(self.parents)))

    def name(self, path: str) -> str | None:
        """The name under the given paths of the file at `path` (symlinks resolved), or None
        when a change of `path` cannot change the desired state."""
        base = os.path.basename(path)
        if base.startswith(".#"):  # an editor's lock file
            return None
        for watched in self.paths:
            if not watched.directory:
                if path == watched.target:
                    return watched.given
            elif is_yaml_name(base) and path.startswith(watched.target + os.sep):
                below = path[len(watched.target) :]
                # Hidden files and directories are not read (sources.loader), so not watched.
                if f"{os.sep}." in below:
                    return None
                return watched.given + below
        return None

    def listing(self, path: str) -> bool:
        """Whether `path` is where a given path or a symlink on its way is listed."""
        return any(path in watched.entries for watched in self.paths)

    def moved(self, before: WatchSet) -> list[str]:
        """The given paths that lead elsewhere than they did in `before`."""
        was = {watched.given: watched for watched in before.paths}
        return [w.given for w in self.paths if was.get(w.given) != w]


def display(path: str) -> str:
    """`path` relative to the working directory when it is below it (as the user wrote it)."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


async def watch_files(
    paths: Sequence[str | os.PathLike[str]],
    notify: Callable[[set[str]], None],
    stop: asyncio.Event,
    failed: Callable[[str], None],
    *,
    step_ms: int = 50,
    recheck_s: float = 5.0,
) -> None:
    """Call `notify(changed files)` on every change under `paths` until `stop` is set. A
    path that comes to lead elsewhere is a change of that path, and the watch follows it.
    A watch that fails is reported to `failed` and started again after `recheck_s`; runs
    on the interval go on meanwhile."""
    watch = WatchSet.of(paths)
    while not stop.is_set():
        failures = await _watch_until_moved(watch, paths, notify, stop, step_ms, recheck_s)
        now = WatchSet.of(paths)
        if failures and now == watch:  # not a path moved while its watch started
            for failure in failures:
                failed(f"{failure}; retrying in {recheck_s:g}s (interval runs go on)")
            await wait_any((stop,), recheck_s)
            now = WatchSet.of(paths)
        moved, watch = now.moved(watch), now
        if moved and not stop.is_set():
            # Files may have changed while nothing watched them: the next run reads all.
            notify({display(path) for path in moved})


async def _watch_until_moved(
    watch: WatchSet,
    paths: Sequence[str | os.PathLike[str]],
    notify: Callable[[set[str]], None],
    stop: asyncio.Event,
    step_ms: int,
    recheck_s: float,
) -> list[str]:
    """Watch what `watch` resolved until `stop` is set, a path leads elsewhere or watching
    fails; what failed."""
    import watchfiles

    default = watchfiles.DefaultFilter()
    ended = asyncio.Event()
    failures: list[str] = []

    def accept(change: watchfiles.Change, path: str) -> bool:
        # A listing is the user's own name, which the default filter may not like.
        return watch.listing(path) or (default(change, path) and watch.name(path) is not None)

    def changed(found: set[str]) -> None:
        names = {name for path in found if (name := watch.name(path)) is not None}
        if names:
            notify({display(name) for name in names})
        if any(watch.listing(path) for path in found) and WatchSet.of(paths) != watch:
            ended.set()

    async def one(roots: tuple[str, ...], *, recursive: bool, best_effort: bool) -> None:
        if not roots:
            return
        try:
            # `ended`, not cancellation, ends it: awatch waits in a thread that a
            # cancellation would wait for (up to 5s).
            async for changes in watchfiles.awatch(
                *roots,
                watch_filter=accept,
                stop_event=ended,
                step=step_ms,
                recursive=recursive,
                ignore_permission_denied=best_effort,
            ):
                changed({path for _, path in changes})
        except (OSError, RuntimeError) as error:
            failures.append(f"watching {', '.join(map(display, roots))} failed: {error}")
            ended.set()

    async def recheck() -> None:
        while not ended.is_set():
            await wait_any((stop, ended), recheck_s)
            if stop.is_set() or WatchSet.of(paths) != watch:
                ended.set()

    def present(directories: tuple[str, ...]) -> tuple[str, ...]:
        # One missing now (removed, not yet put back) is not watched: its listing is.
        return tuple(filter(os.path.isdir, directories))

    watchers = [
        one(present(watch.roots), recursive=True, best_effort=False),
        one(present(watch.parents), recursive=False, best_effort=False),
        # A listing is watched only to notice sooner what `recheck` notices anyway: a
        # directory the agent may pass through but not read (mode 711) is no failure.
        one(present(watch.listings), recursive=False, best_effort=True),
    ]
    tasks = [asyncio.ensure_future(task) for task in (recheck(), *watchers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        # One that raised what nobody expects ends the others, by `ended` (see `one`), and
        # they are waited for: none watches on, detached, after this returned.
        ended.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return failures
