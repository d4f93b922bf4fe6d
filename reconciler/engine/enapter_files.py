"""The communication config files written for Enapter devices (`configOutput.file`): where
one goes, the record of each one written, and its removal once its device is deleted or
its config goes elsewhere.

A config file holds the device's credentials, so it should not outlive the device. Once
the device is undeclared (removed from the YAML), its `configOutput` is gone with it: what
the reconciler wrote is known only from the inventory (`engine.state`), which records each
file by its path, with the Enapter id of the device it was written for and the file's
identity (inode, modification time, size) right after the write. No digest of the content: the
inventory is not a private file, and the content is credentials. The record is made before
the file is written, as pending (`reserve`), naming the temporary file it is written to
under a name no other write uses, and given the file's identity before it is renamed into
place (`put`): no kill leaves a file written and not recorded, and the temporary file a
kill leaves, holding credentials, is known as the reconciler's and removed by the next
run (`clear_leftovers`). Those are the two writes of the inventory a config file costs,
and neither can go: the first is what makes a leftover temporary file known, and no
identity can be recorded before the file is written; without the second, a kill right
after the rename leaves a file that was never in place (killed before the temporary file
was made) not to be told from one that was. Once the file is in place, its pending record
is its record (`StateDir.read_inventory`), kept so by the next write of the inventory.
Leftovers are removed by the CLI's `apply` and `watch` before each apply, and by the
operator at its first reconcile of each namespace (`operator.leftovers`).

A temporary file is locked (flock) by its writer from its creation, before a byte of it is
written, until it is renamed into place (`hold`): the kernel lets go of the lock of a
process killed, so a temporary file nobody holds is no write under way, whatever the pid
it was recorded by (one reused by another process is no sign of it). Temporary files with
no record are removed too (`clear_leftovers`): those of earlier versions, which recorded
none (`NAME.tmp`, `.NAME.XXXXXXXX.tmp`), and this version's of a run with another state
directory (an absolute `configOutput.file`), each under the exact name its writer used
beside a config file the reconciler manages (declared, recorded or being written), a
regular file of this user, readable by them alone, as every writer made it, and no
config file a Device declares: a user's file is never one of those. Nor an empty one:
creating a file and locking it are two calls, and a run of another state directory may be
between them, its file not held yet; removed then, its write failed (its lock taken on a
file gone, `hold`), and was tried again. Nothing is written before the lock, so a file
with bytes in it that nobody holds is no write under way, and an empty one holds no
credentials to remove. A recorded file is removed empty too: the runs of one state
directory take its lock one at a time, so a record of another run's is a killed run's.

A file is removed after its device's delete succeeded (`engine.enapter`), or once the
device's config was written to another file (its `configOutput.file` changed: the one
written before holds its credentials too; also when the device was deleted and
provisioned again, a replace: `adopt`), or by an update of the device once its
`configOutput` names another file or none (a Secret instead, or no output), and only when
the reconciler wrote it (a record), it is still that file (replaced or edited since, it is
someone else's) and no declared Device names it (it is then that Device's config). A file
the reconciler did not write is never removed: files written before records were kept
have none, and stay. A file that could not be removed keeps its record: while its device
is there, the next plan removes it again (a device may so have several records: the file
its configOutput names, and ones it named before), and once it is deleted, the next plan
of its Site (see below). A file whose directory cannot be looked into (permission
denied there at that moment) is neither gone nor changed: its removal fails, saying why,
and its record stays.

A device's delete marks its record before it is sent (`mark_deleting`), saying whether it
is a replace's: a run killed once the delete took effect, before the file was removed (or,
for a replace, before the device was provisioned again; or its provisioning failed),
leaves the device gone and the file in place, and the next plan of its Site removes the
file (`interrupted_deletes`): a replace's at once, a --prune's with the next `--prune`. A
replace still under way in this process (the device deleted, its provisioning not
answered yet: the operator reconciles its Site meanwhile) is no interrupted one: its files
are left to it (`replaces_under_way`).
One killed once it removed the file, before it forgot the file's record, leaves a record
of a file gone: the next apply forgets it (`clear_leftovers`).

The records also say whose config a file holds: a Device whose file, still as written,
was written for another Enapter device (one deleted since, or another device's) has no
config of its own there (`written_for`)."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import re
import secrets
import stat as stat_module
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.engine import replaces_under_way
from reconciler.engine.config import Settings
from reconciler.engine.state import Inventory, PendingFile, StateDir, WrittenFile
from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Advice, Audience
from reconciler.plan.enapter_observed import InterruptedDelete
from reconciler.state_files import TEMPORARY_SUFFIX


def config_path(settings: Settings, declared: str) -> Path:
    """Where `configOutput.file` is written: absolute as given, else under the state dir.
    Taken literally, as the state directory is (`StateDir`): validation refuses a leading
    `~` (`model.fleet`), and expanding one here raised for a `~user` that does not exist."""
    path = Path(declared)
    return path if path.is_absolute() else Path(settings.state_dir) / path


def shown_path(settings: Settings, declared: str) -> str:
    """How a plan names the config file `declared`: absolute, under the state directory
    with its links resolved, as `apply PLANFILE` takes two spellings of one directory to be
    the same (`cli.saved_paths`). A saved plan is compared with the plan its apply makes,
    text included: `.reconciler` for the plan and `$PWD/.reconciler` for the apply named one
    file twice, and made the saved plan stale."""
    path = Path(declared)
    if path.is_absolute():
        return declared  # as the Device declares it, whatever the state directory
    return os.path.normpath(Path(os.path.realpath(settings.state_dir)) / path)


def _key(path: Path | str) -> str:
    """A path as records keep it: absolute and normalised, so that a state directory
    given relative in one run and absolute in the next names the same file."""
    return os.path.normpath(os.path.abspath(path))


def _declared(settings: Settings, fleet: Fleet) -> set[str]:
    """The config files the fleet's Devices declare."""
    out = set()
    for device in fleet.devices.values():
        output = device.config_output
        if output is not None and output.file is not None:
            out.add(_key(config_path(settings, output.file)))
    return out


def reserve(settings: Settings, device_id: str, path: Path, audience: Audience) -> Path:
    """The temporary file a config file for Enapter device `device_id` is written to
    before `put` renames it onto `path`: a name next to `path` that no other write uses,
    recorded as pending before the file is created (`write_temporary`, which creates it
    anew), so that a run killed while it is there, holding the device's credentials,
    leaves it known as the reconciler's for the next run to remove (`clear_leftovers`).
    Once the write is over, `release` forgets it. `audience`: who a damaged inventory is
    said to (`StateDir.read_inventory`), as for every function here that reads it."""
    state = StateDir(Path(settings.state_dir))
    inventory = state.read_inventory(audience)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}{TEMPORARY_SUFFIX}")
    pending = PendingFile(_key(tmp), _key(path), device_id, _OWNER)
    inventory.enapter_config_files_pending[pending.tmp] = pending
    state.write_inventory(inventory)
    return tmp


def put(
    settings: Settings, device_id: str, written: Path, path: Path, audience: Audience
) -> None:
    """Rename the config file `written` for Enapter device `device_id` (whole and synced,
    in the temporary file `reserve` named) onto `path`, and record it. One file has one
    writer: the record of another device for the same path (one deleted and provisioned
    again, whose new config replaced the old) is replaced. The device's records of other
    files stay, for `remove` to remove them.

    The pending record is given the identity the file keeps through the rename, before
    it: read once the file is in place and its temporary file gone, that record is the
    file's (`StateDir.read_inventory`), so the rename needs no write of the inventory
    after it, and a run killed right after it leaves the file recorded all the same; one
    killed before it leaves the record of the file there untouched. Raises OSError when
    the file could not be put there."""
    state = StateDir(Path(settings.state_dir))
    inventory = state.read_inventory(audience)
    stat = os.lstat(written)
    key, tmp = _key(path), _key(written)
    file = WrittenFile(key, stat.st_ino, stat.st_mtime_ns, stat.st_size, device_id)
    pending = inventory.enapter_config_files_pending.get(tmp)
    pending = pending or PendingFile(tmp, key, device_id, _OWNER)
    inventory.enapter_config_files_pending[tmp] = dataclasses.replace(pending, written=file)
    state.write_inventory(inventory)
    os.replace(written, path)  # on failure, the caller removes it and `release`s it


def release(settings: Settings, tmp: Path, audience: Audience) -> None:
    """Forget the pending record of the temporary file `tmp` (`reserve`) once a write
    that did not put it in place is over and the file is gone (removed by the caller). One
    still there (it could not be removed) keeps it, for the next run to remove. One put in
    place needs nothing: its record is read as the file's (`put`)."""
    try:
        os.lstat(tmp)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError:
        return
    else:
        return
    state = StateDir(Path(settings.state_dir))
    inventory = state.read_inventory(audience)
    if inventory.enapter_config_files_pending.pop(_key(tmp), None) is not None:
        state.write_inventory(inventory)


def hold(descriptor: int) -> int:
    """Lock the temporary file just made (`reserve`), open as `descriptor`, before a byte
    of it is written (`state.write_temporary` calls this), so that `clear_leftovers` in
    another process leaves it alone; a descriptor of it that holds the lock until the
    caller closes it, once the file is renamed into place (or removed). Raises OSError when
    it was removed in the instant before the lock (by hand, or by a run of an older
    version; this one's leave an empty file with no record alone, see the module): the
    write then fails, as it must, its file gone."""
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    if os.fstat(descriptor).st_nlink == 0:
        raise OSError(errno.ENOENT, "removed as it was made, by another run clearing leftovers")
    return os.dup(descriptor)  # the lock is the open file's, which this keeps open


@dataclass(frozen=True)
class _Leftover:
    """A temporary config file that a killed run left (`_leftovers`): `tmp`, the config
    file `path` it was written for, and its pending record (None: it has none)."""

    tmp: str
    path: str
    record: PendingFile | None
    stat: os.stat_result

    def said(self, audience: Audience) -> str:
        return _said(self.path, self.record, audience)


# Who left a recorded temporary file, as each reader knows the runs that write: the
# operator finds those of a killed operator as well as those of a killed apply.
_KILLED = Advice(cli="a killed apply", operator="a killed run")


def _said(path: str, record: PendingFile | None, audience: Audience) -> str:
    """What a temporary file of the config file `path` is, never what it holds."""
    if record is None:
        return (
            f"the temporary file an earlier run, killed, left holding the config it was "
            f"writing to {path}"
        )
    return (
        f"the temporary file {_KILLED.to(audience)} left holding the config it was writing "
        f"to {path} for Enapter device {record.device_id}"
    )


@dataclass
class Cleared:
    """What clearing leftovers did (`clear`), one line for each file, said to `audience`;
    `unremoved`: those of `said` that name a file it could not remove, which the next run
    tries again."""

    audience: Audience
    said: list[str] = field(default_factory=list)
    unremoved: list[str] = field(default_factory=list)

    def not_removed(self, tmp: str, what: str, exc: OSError) -> None:
        line = _unremoved(tmp, what, exc, self.audience)
        self.said.append(line)
        self.unremoved.append(line)


def leftovers(settings: Settings, fleet: Fleet, audience: Audience) -> list[str]:
    """The temporary config files killed runs left, each holding a device's credentials,
    that the next `clear_leftovers` removes, one line for each (what a plan says; it
    writes nothing)."""
    inventory = StateDir(Path(settings.state_dir)).read_inventory(audience)
    out = []
    for found in _leftovers(settings, fleet, inventory, Cleared(audience)):
        try:
            descriptor = _open_unheld(found)
        except OSError:
            descriptor = None
        if descriptor is not None:
            os.close(descriptor)
            out.append(f"{found.tmp} is {found.said(audience)}; {_NEXT_CLEARS.to(audience)}")
    return out


# Who removes a leftover a plan finds (`leftovers`).
_NEXT_CLEARS = Advice(cli="the next apply removes it", operator="the next reconcile removes it")


def clear_leftovers(settings: Settings, fleet: Fleet, audience: Audience) -> list[str]:
    """What `clear` did, said to `audience`."""
    return clear(settings, fleet, audience).said


def clear(settings: Settings, fleet: Fleet, audience: Audience) -> Cleared:
    """Remove the temporary config files (`reserve`) that runs killed while they wrote
    them left behind, each holding a device's credentials, and forget their pending
    records (a file renamed into place before the kill keeps its record as a written
    file: see `StateDir.read_inventory`), and those with no record (see the module); what
    was done, said to `audience`, never what the files hold. Left alone: the files a
    running process is writing (this one, or another that holds its lock: `hold`), and one
    that is no longer the file written (changed since, or not a regular file). Raises
    StateDirError when the inventory cannot be read or written."""
    state = StateDir(Path(settings.state_dir))
    inventory = state.read_inventory(audience)
    pending = inventory.enapter_config_files_pending
    before = dict(pending)
    cleared = Cleared(audience)
    for found in _leftovers(settings, fleet, inventory, cleared):
        try:
            descriptor = _open_unheld(found)
        except (FileNotFoundError, NotADirectoryError):
            pending.pop(found.tmp, None)  # removed meanwhile
            continue
        except OSError as exc:
            cleared.not_removed(found.tmp, found.said(audience), exc)
            continue
        if descriptor is None:
            continue  # being written
        try:
            os.unlink(found.tmp)  # holding its lock: a writer that made it just now fails
        except OSError as exc:
            cleared.not_removed(found.tmp, found.said(audience), exc)
            continue
        finally:
            os.close(descriptor)
        pending.pop(found.tmp, None)
        cleared.said.append(f"removed {found.tmp}, {found.said(audience)}")
    forgotten = _forget_removed(inventory)
    if pending != before or forgotten:
        state.write_inventory(inventory)
    return cleared


def _forget_removed(inventory: Inventory) -> bool:
    """Forget the records of the config files of deleted devices (`mark_deleting`) that
    are gone: an apply killed after it removed one (`remove`), before the inventory that
    forgets it was written, left its record, with nothing left to remove. Whether any was
    forgotten. A file that cannot be looked at (a directory not to be looked into) is not
    gone: its record stays."""
    files = inventory.enapter_config_files
    gone = []
    for path, file in files.items():
        if not file.deleting:
            continue
        try:
            os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            gone.append(path)
        except OSError:
            continue
    for path in gone:
        del files[path]
    return bool(gone)


def _leftovers(
    settings: Settings, fleet: Fleet, inventory: Inventory, cleared: Cleared
) -> list[_Leftover]:
    """The temporary files to remove: those of pending records (each record whose file
    is gone, or is no longer the one written, is dropped from `inventory`, saying so in
    `cleared` for the latter), then those with no record (see the module)."""
    pending = inventory.enapter_config_files_pending
    recorded = set(pending)  # a file whose record is dropped below is no unrecorded one
    out = []
    for tmp, file in sorted(pending.items()):
        if file.owner == _OWNER:
            continue  # this process's: being written, or one it could not remove
        try:
            stat = os.lstat(tmp)
        except (FileNotFoundError, NotADirectoryError):
            del pending[tmp]  # never made, or renamed into place
            continue
        except OSError as exc:
            cleared.not_removed(tmp, _said(file.path, file, cleared.audience), exc)
            continue
        written = file.written
        if not stat_module.S_ISREG(stat.st_mode) or (
            written is not None and not written.is_stat(stat)
        ):
            cleared.said.append(f"left {tmp} alone: it is not the temporary file written there")
            del pending[tmp]
            continue
        out.append(_Leftover(tmp, file.path, file, stat))
    return out + _unrecorded(settings, fleet, inventory, recorded)


def _unrecorded(
    settings: Settings, fleet: Fleet, inventory: Inventory, recorded: set[str]
) -> list[_Leftover]:
    """The temporary files with no record (none of `recorded`) beside the config files
    the reconciler manages (see the module)."""
    managed = _declared(settings, fleet) | set(inventory.enapter_config_files)
    managed |= {file.path for file in inventory.enapter_config_files_pending.values()}
    by_directory: dict[str, dict[str, str]] = {}
    for path in managed:
        directory, name = os.path.split(path)
        by_directory.setdefault(directory, {})[name] = path
    out = []
    for directory, names in sorted(by_directory.items()):
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue  # not there, or not to be looked into: nothing of ours to see
        for entry in entries:
            tmp = os.path.join(directory, entry)
            config = _written_by(entry, names)
            if config is None or tmp in managed or tmp in recorded:
                continue
            try:
                stat = os.lstat(tmp)
            except OSError:
                continue
            if _as_written(stat):
                out.append(_Leftover(tmp, config, None, stat))
    return out


# The names a temporary config file was written under beside NAME, its config file, by
# each version: `NAME.<16 hex digits>.tmp` (`reserve`), `NAME.tmp` (`state.write_temporary`
# before each file had a name of its own), `.NAME.<8 of tempfile's letters>.tmp` (mkstemp,
# before that).
_TOKENED = re.compile(r"(.+)\.[0-9a-f]{16}")
_MKSTEMP = re.compile(r"\.(.+)\.[a-z0-9_]{8}")


def _written_by(entry: str, names: dict[str, str]) -> str | None:
    """The config file (of `names`, file name -> path) that `entry` is a temporary file
    of, by the exact names its writers used; None when it is none's."""
    if not entry.endswith(TEMPORARY_SUFFIX):
        return None
    base = entry.removesuffix(TEMPORARY_SUFFIX)
    matches = (_TOKENED.fullmatch(base), _MKSTEMP.fullmatch(base))
    candidates = [base] + [match[1] for match in matches if match]
    return next((names[name] for name in candidates if name in names), None)


def _as_written(stat: os.stat_result) -> bool:
    """Whether a file is as every writer of a temporary config file made it: a regular
    file of this user, readable and writable by them alone (0600, or narrower by the
    umask)."""
    return (
        stat_module.S_ISREG(stat.st_mode)
        and stat.st_uid == os.geteuid()
        and not stat.st_mode & 0o077
    )


def _open_unheld(found: _Leftover) -> int | None:
    """A descriptor of `found` holding its lock, when it is still the file found and no
    writer holds it (`hold`), nor may be about to: one with no record that is empty (see
    the module); None when it is held, may be, or is another file now. Raises OSError
    when it cannot be opened."""
    descriptor = os.open(
        found.tmp, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    )
    try:
        now = os.fstat(descriptor)
        if (now.st_dev, now.st_ino) != (found.stat.st_dev, found.stat.st_ino):
            raise BlockingIOError  # replaced since it was looked at: not that one
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Its size read under the lock, which a writer takes before its first byte: a
        # writer that made it and has not locked it yet cannot write meanwhile.
        if found.record is None and os.fstat(descriptor).st_size == 0:
            raise BlockingIOError
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


# Who tries again to remove a leftover that could not be: the CLI's next apply (or
# `watch`'s next pass), or the operator's next reconcile (`operator.leftovers`).
_CLEARED_AGAIN = Advice(cli=" (or the next apply tries again)",
                        operator=" (or the next reconcile tries again)")


def _unremoved(tmp: str, what: str, exc: OSError, audience: Audience) -> str:
    return (
        f"{tmp}, {what}, could not be removed: {exc.strerror or exc}; it "
        f"holds the device's credentials: remove it{_CLEARED_AGAIN.to(audience)}"
    )


# The process a pending record is written by: its pid, and a token of its own (in a
# container, the next run often has the pid of the one killed). Only this process's own
# records are told by it: another's is being written while its writer holds its lock.
_OWNER = f"{os.getpid()}-{secrets.token_hex(8)}"


def adopt(settings: Settings, old_id: str, new_id: str, audience: Audience) -> None:
    """Enapter device `old_id` was deleted and provisioned again as `new_id` (a replace):
    the files written for the old one hold the same Device's credentials, now the new
    one's to remove (`remove`), and while it is there a failed removal is tried again."""
    state = StateDir(Path(settings.state_dir))
    inventory = state.read_inventory(audience)
    files = inventory.enapter_config_files
    old = [path for path, file in files.items() if file.device_id == old_id]
    if not old:
        return
    for path in old:
        files[path] = dataclasses.replace(files[path], device_id=new_id, deleting="")
    state.write_inventory(inventory)


def mark_deleting(
    settings: Settings, device_id: str, site: str, audience: Audience, *,
    replacing: bool = False,
) -> None:
    """Before the delete of Enapter device `device_id` (undeclared in Site `site`, or
    `replacing` it there: `adopt` then hands the records over once it is provisioned
    again) is sent: mark the records of the config files written for it as those of a
    device being deleted, and by what. A record marked for this Site already keeps its
    mark: the delete sent again to finish an interrupted one (`interrupted_deletes`) is
    that one's, and a replace's stays a replace's, which needs no --prune."""
    state = StateDir(Path(settings.state_dir))
    inventory = state.read_inventory(audience)
    files = inventory.enapter_config_files
    mine = [p for p, f in files.items() if f.device_id == device_id and f.deleting != site]
    if not mine:
        return
    for path in mine:
        files[path] = dataclasses.replace(files[path], deleting=site, replacing=replacing)
    state.write_inventory(inventory)


def replacing(settings: Settings, device_id: str, audience: Audience) -> bool:
    """Whether the records of Enapter device `device_id` are marked as a replace's delete."""
    files = StateDir(Path(settings.state_dir)).read_inventory(audience).enapter_config_files
    return any(f.device_id == device_id and f.replacing for f in files.values())


def interrupted_deletes(
    settings: Settings, fleet: Fleet, audience: Audience
) -> dict[str, InterruptedDelete]:
    """Enapter device id -> the Site whose apply sent its delete, the config files written
    for it, and whether the delete was a replace's, for the records `mark_deleting` marked
    whose file is still the one written and named by no declared Device: the device is
    gone when its Site's devices no longer hold it, and the files are then left to remove.
    Not those of a replace this process has under way (`replaces_under_way`): its delete
    is not interrupted, and the files are the replace's to remove."""
    files = StateDir(Path(settings.state_dir)).read_inventory(audience).enapter_config_files
    under_way = replaces_under_way.under_way(settings)
    marked = [f for f in files.values() if f.deleting and f.device_id not in under_way]
    if not marked:
        return {}
    declared = _declared(settings, fleet)
    out: dict[str, InterruptedDelete] = {}
    for file in sorted(marked, key=lambda f: f.path):
        if _ours(file, declared):
            found = out.setdefault(
                file.device_id, InterruptedDelete(file.deleting, [], file.replacing))
            found.paths.append(file.path)
    return out


def _others(files: Iterable[WrittenFile], device_id: str, own: Path | None) -> list[WrittenFile]:
    """The files written for `device_id` other than `own`, by path."""
    mine = [f for f in files if f.device_id == device_id]
    return sorted((f for f in mine if own is None or f.path != _key(own)), key=lambda f: f.path)


def recorded(
    settings: Settings, device_id: str, audience: Audience, *, own: Path | None = None
) -> bool:
    """Whether a config file, other than `own`, was recorded as written for Enapter device
    `device_id` (what `remove` would look at)."""
    inventory = StateDir(Path(settings.state_dir)).read_inventory(audience)
    return bool(_others(inventory.enapter_config_files.values(), device_id, own))


def written_for(
    settings: Settings, paths: Iterable[Path], audience: Audience
) -> dict[Path, str]:
    """Path -> the Enapter device id the config file there was written for, for the
    `paths` a record names whose file is still the one written. A file with no record
    (written before records were kept, or by hand), or changed since, has no entry."""
    files = StateDir(Path(settings.state_dir)).read_inventory(audience).enapter_config_files
    out = {}
    for path in paths:
        found = files.get(_key(path))
        if found is not None and found.is_in_place():
            out[path] = found.device_id
    return out


def _ours(file: WrittenFile, declared: set[str]) -> bool:
    """Whether `file` is still the one written, or may be (its directory cannot be looked
    into now: the removal then says why it failed, and keeps the record), and no declared
    Device names it."""
    # Gone, or a link or another file put there: not it, nothing to remove.
    return file.path not in declared and file.found() is not False


def removable(
    settings: Settings, fleet: Fleet, device_ids: Iterable[str], audience: Audience
) -> dict[str, list[str]]:
    """Enapter device id -> the config files written for it that its delete, or an update
    of it, would remove now (those no declared Device names), for the `device_ids` that
    have one (what a plan says it will do)."""
    ids = set(device_ids)
    files = StateDir(Path(settings.state_dir)).read_inventory(audience).enapter_config_files
    wanted = [f for f in files.values() if f.device_id in ids]
    if not wanted:
        return {}
    declared = _declared(settings, fleet)
    out: dict[str, list[str]] = {}
    for file in sorted(wanted, key=lambda f: f.path):
        if _ours(file, declared):
            out.setdefault(file.device_id, []).append(file.path)
    return out


def remove(
    settings: Settings, fleet: Fleet, device_id: str, audience: Audience, *,
    own: Path | None = None,
) -> str | None:
    """After Enapter device `device_id` was deleted, or brought to its declaration with
    `own` the file its `configOutput` names (None: no file): remove the config files
    written for it other than `own`, those still ours (see the module), and forget their
    records. Returns what happened, or None when nothing else was written for it; raises
    OSError when a file could not be removed (its record is kept: a retry of the delete
    tries again, and the plan of a device still there removes it again)."""
    state = StateDir(Path(settings.state_dir))
    inventory = state.read_inventory(audience)
    files = _others(inventory.enapter_config_files.values(), device_id, own)
    if not files:
        return None
    declared = _declared(settings, fleet)
    outcomes = []
    try:
        for file in files:
            outcomes.append(_remove(file, declared))
            # A file another declared Device names keeps its record until that Device's
            # config replaces it: the record is what says whose config the file still
            # holds, so that Device does not take it for its own.
            if file.path not in declared:
                del inventory.enapter_config_files[file.path]
    finally:  # what was removed before a failure is forgotten all the same
        state.write_inventory(inventory)
    return "; ".join(outcomes)


def _remove(file: WrittenFile, declared: set[str]) -> str:
    """Remove `file` if it is still ours (see the module); what happened."""
    if file.path in declared:
        return f"kept {file.path}: a declared Device writes its config there"
    try:
        stat = os.lstat(file.path)
    except (FileNotFoundError, NotADirectoryError):
        return f"{file.path} is gone already"
    # Any other error (permission denied on the directory, say) is raised: the file may
    # well be there, and its record stays for a later run to try again.
    if not file.is_stat(stat):
        return f"left {file.path} alone: it changed since it was written"
    os.unlink(file.path)
    return f"removed {file.path}"
