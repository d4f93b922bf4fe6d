"""The state directory: a lock so only one writer acts at a time, a journal of every
external write (intent before, outcome after, fsynced), and the inventory of the gateways
and sites we manage. None of it is needed to find remote objects (they are matched by
natural keys); the journal makes an interrupted run visible and auditable, the inventory
remembers each gateway's `deletionPolicy` and organisation, and each Site's Novacore
site, for when they are removed from the desired state, the Enapter config files it
wrote (`engine.enapter_files`), and the names of the fields each resource declared when
last applied, for when one is declared no more (`plan.removed_fields`); the credential
ledger remembers which MQTT password each device was given (`engine.credentials`)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import io
import json
import os
import pwd
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine import inventory_shape, state_temporaries
from reconciler.engine.credentials import (
    FINGERPRINT_DIGITS,
    KEY_BYTES,
    CredentialLedger,
    is_fingerprint,
)
from reconciler.errors import ReconcilerError
from reconciler.model.gateway import DeletionPolicy
from reconciler.plan.advice import Advice, Audience
from reconciler.plan.retired import LeftSite, RetiredSite
from reconciler.plan.retired_gateways import RememberedZap
from reconciler.printable import echo
from reconciler.sources import bounded, json_text
from reconciler.state_files import (
    CREDENTIALS,
    CREDENTIALS_KEY,
    INVENTORY,
    JOURNAL,
    JOURNAL_ROTATED,
    LOCK,
    TEMPORARY_SUFFIX,
)

# Attempts to take a lock whose holder has written no line yet (`StateDir.lock`), 10 ms apart.
_LOCK_TRIES = 20
# The most of the lock file's line read to name its holder: the line `lock` writes takes
# some 300 characters (its command is cut at 200). A lock file is only ever shown.
_HOLDER_CHARS = 1024

# Past this size, a settled journal starts afresh (`StateDir.settle`): about 40,000 writes.
JOURNAL_ROTATE_BYTES = 8 * 1024 * 1024

# The most the inventory or the credential ledger may hold. An apply of the benchmark's
# fleet of 1,000 sites leaves an inventory of 171 KB, and a ledger takes some 110 bytes a
# device: 64 MiB holds the inventory of 390,000 such sites, or the ledger of 600,000
# devices, and bounds what reading a file written over by something else costs. The key is
# 64 hexadecimal digits: a file of more than a KiB is no key.
MAX_STATE_FILE_BYTES = 64 * 2**20
MAX_KEY_FILE_BYTES = 2**10

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class StateDirError(ReconcilerError):
    """The state directory cannot be used: it cannot be created, read or written (a
    damaged file, a full disk, a directory's permissions), or another process holds its
    lock (`LockHeld`). Nothing a resource's spec says causes it or cures it: the file is
    repaired, removed or made writable on this host (or the lock let go), and the next run
    reads it again. So it is `retryable`: the operator's next reconcile tries again by
    itself instead of holding the object's writes until its spec changes, which would not
    help; the changes already made are found again by their natural keys."""

    retryable = True


class LockHeld(StateDirError):
    """Another process holds the state directory's lock."""


class StateNotWritten(StateDirError):
    """A state file (the inventory, the credential ledger, the journal) could not be
    written once the run was under way: a full disk, a directory made read-only. No
    platform's refusal and nothing declared: the next run tries again (`retryable`), as
    the operator's next reconcile does without holding the object back. `path` is the file,
    `reason` why (`no space left on device`); `again`, what the message says of the next
    run, to `audience` (`to` says it to another)."""

    def __init__(
        self,
        message: str,
        *,
        path: Path,
        reason: str,
        again: Advice | None = None,
        audience: Audience = Audience.CLI,
    ) -> None:
        super().__init__(message + (again.to(audience) if again is not None else ""))
        self.path = path
        self.reason = reason
        self._message = message
        self._again = again

    def to(self, audience: Audience) -> StateNotWritten:
        """The same failure, saying to `audience` who tries again: raised by a caller that
        knows its reader (`engine.enapter`), as the state directory does not."""
        return StateNotWritten(self._message, path=self.path, reason=self.reason,
                               again=self._again, audience=audience)


@dataclass
class StateDir:
    path: Path
    # While `lock` holds it: the lock file, locked, and the directories made for it.
    _held: tuple[io.TextIOWrapper, list[Path]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def ensure(self) -> None:
        """Make the directory; StateDirError, naming the setting, when it or a directory
        above it is a file (the OSError alone would say "File exists")."""
        # Made private: it keeps the credential ledger and, by default, the Enapter config
        # files, and the inventory names files a later `--prune` removes. (A directory
        # that is there already keeps its mode: the user chose it.)
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except (FileExistsError, NotADirectoryError):
            why = not_a_directory(self.path)
            if why is None:
                raise
            raise StateDirError(
                f"cannot use {self.path} as the state directory (RECONCILER_STATE_DIR): "
                f"{why}; set RECONCILER_STATE_DIR to a directory, or move the file away"
            ) from None

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[list[str]]:
        """Hold the writer lock; raise LockHeld naming the holder when it is taken, and
        StateDirError when the directory cannot be created or written. Yields what was
        said of the temporary files of state files that killed runs left, removed once
        the lock is held (`engine.state_temporaries`), for the caller to say. While it is
        held, `keep_locked` takes it again where the directory was removed or replaced."""
        self._held = self._acquire(command)
        try:
            # Now, with no other writer: any such file is no write under way.
            yield state_temporaries.clear(self.path)
        finally:
            held, self._held = self._held, None
            if held is not None:
                _release(self.path, *held)

    def keep_locked(self, command: str) -> list[str] | None:
        """For a holder of the lock over a long life (the watch agent), before it writes:
        None while the lock file it holds is still the one in the state directory, else
        the lock taken again there, saying what `lock` says, when the directory was
        removed (`git clean -x`, `rm -rf`) or replaced since. A lock on a file no longer
        there keeps nobody out: another writer would take the new one and write beside
        it. Raises LockHeld when another process took it meanwhile (the lock is then
        tried again at the next call), StateDirError when it cannot be made."""
        if self._held is None:
            raise StateDirError(f"the lock of the state directory {self.path} is not held")
        if _is_at(self._held[0].fileno(), self.path / LOCK):
            return None
        again = self._acquire(command)
        # The old file is nobody's lock any more; the directories made for it, if it left
        # any, are not removed: what is at their path now is another directory.
        self._held[0].close()
        self._held = again
        return state_temporaries.clear(self.path)

    def _acquire(self, command: str) -> tuple[io.TextIOWrapper, list[Path]]:
        """The lock file, locked, with our line in it, and the directories made for it
        (`lock`); refused as `lock` says."""
        made = _missing_directories(self.path)
        for attempt in range(_LOCK_TRIES):
            handle = self._open_lock()
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Leave the holder's line alone: the next one refused must read it too.
                handle.seek(0)
                holder = handle.readline(_HOLDER_CHARS).strip()
                handle.close()
                # No line: `holder()` looking (for microseconds), or a holder about to
                # write its line. A writer is not refused for a reader's look.
                if holder or attempt == _LOCK_TRIES - 1:
                    raise LockHeld(
                        f"the state directory {self.path} is locked by "
                        f"{holder or 'another process'}; wait for it to finish or stop it"
                    ) from None
                time.sleep(0.01)
                continue
            if _is_at(handle.fileno(), self.path / LOCK):
                break
            # Its holder removed the lock file (and the directory it made) before letting
            # go (see `_release`): a lock taken on it locks nothing anybody else sees.
            handle.close()
        else:
            raise LockHeld(
                f"the state directory {self.path} is locked by another process; wait for "
                "it to finish or stop it"
            )
        try:
            self._check_writable()
            handle.seek(0)
            handle.truncate()
            handle.write(
                f"pid {os.getpid()} on {socket.gethostname()} running `{command}` "
                f"since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
            )
            handle.flush()
        except BaseException:
            _release(self.path, handle, made)
            raise
        return handle, made

    def _open_lock(self) -> io.TextIOWrapper:
        try:
            self.ensure()
            descriptor = _open_regular(self.path / LOCK, os.O_RDWR | os.O_APPEND)
        except bounded.NotARegularFile as exc:
            raise StateDirError(
                f"cannot use {self.path} as the state directory: {exc.filename} is "
                f"{exc.strerror}; remove it, and the next run makes a new lock file there"
            ) from None
        except IsADirectoryError as exc:  # the lock's name taken: the state directory is one
            raise StateDirError(
                f"cannot use {self.path} as the state directory: {exc.filename} is a "
                "directory, where the lock file goes; remove it, and the next run makes a "
                "new lock file there"
            ) from None
        except OSError as exc:
            raise StateDirError(
                f"cannot use {self.path} as the state directory: {exc.strerror}; set "
                "RECONCILER_STATE_DIR to a directory this process can create and write"
            ) from None
        # "replace": a line not UTF-8 (written by something else) still names a holder.
        return open(descriptor, "a+", encoding="utf-8", errors="replace")

    def _check_writable(self) -> None:
        """Refuse, before anything is changed, a state directory no file can be made in
        (its mode, a read-only file system), which a lock file left there by an earlier run
        does not show: an apply would otherwise make its changes and then fail to record
        them, leaving the inventory without them. Only the lock's holder calls this, so the
        file made and removed (the lock's temporary name) is nobody else's."""
        probe = self.path / (LOCK + TEMPORARY_SUFFIX)
        try:
            probe.unlink(missing_ok=True)  # one a kill left here
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600))
            probe.unlink()
        except OSError as exc:
            raise StateDirError(
                f"cannot use {self.path} as the state directory: a file cannot be created "
                f"in it ({_reason(exc)}), and the journal and inventory of what a run does "
                "are written there; nothing was changed. Make it writable, or set "
                "RECONCILER_STATE_DIR to a directory this process can create and write"
            ) from None

    def temporaries(self) -> list[str]:
        """What a plan says of the temporary files of state files that killed runs left,
        which the next apply removes (`lock`): nothing while another process holds the
        lock, whose writes may be under way."""
        if self.holder() is not None:
            return []
        return state_temporaries.found_lines(self.path)

    def holder(self) -> str | None:
        """Who holds the lock (its line: pid, host, command, since), or None when nobody
        does. For readers that take no lock: it is tested, never kept, so the holder's
        next writer is not refused for it (see `lock`)."""
        try:
            handle = io.TextIOWrapper(
                bounded.open_regular(self.path / LOCK), encoding="utf-8", errors="replace"
            )
        except OSError:
            return None  # never locked here, or not readable (nor a file): nobody to name
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.readline(_HOLDER_CHARS).strip() or "another process"
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return None

    # -- journal ---------------------------------------------------------------------------

    def journal(self) -> Journal:
        try:
            self.ensure()
            return Journal(self.path / JOURNAL)
        except OSError as exc:
            raise StateDirError(
                f"cannot write the journal {self.path / JOURNAL}: {_reason(exc)}; nothing "
                "was changed"
            ) from None

    def unfinished(self) -> list[dict[str, Any]]:
        """Journal intents with no outcome: writes cut off by a crash or a kill, and not
        observed again since (see `settle`)."""
        return unfinished_intents(self.path / JOURNAL)

    def settle(self, unfinished: list[dict[str, Any]]) -> None:
        """Record that the runs of these `unfinished` intents (read before a run planned)
        were observed again by a run that then applied or had nothing to apply: they are
        not reported again. The caller holds the lock.

        A journal past `JOURNAL_ROTATE_BYTES` with nothing left unfinished then moves to
        `journal.jsonl.1` (replacing the one before), so an agent that runs for months keeps
        a bounded history and reads a bounded file at each start."""
        path = self.path / JOURNAL
        runs = sorted({str(record.get("run", "")) for record in unfinished})
        if runs:
            line = {"ts": _utc_second(int(time.time())), "phase": "settled", "runs": runs}
            try:
                self.ensure()
                descriptor = _open_journal(path)
                try:
                    os.write(descriptor, (json.dumps(line) + "\n").encode())
                finally:
                    os.close(descriptor)
            except OSError as exc:
                raise StateDirError(
                    f"cannot write the journal {path}: {_reason(exc)}; the interrupted "
                    "writes it lists are listed again by the next run"
                ) from None
        try:
            too_big = path.stat().st_size > JOURNAL_ROTATE_BYTES
        except OSError:
            return
        if too_big and not unfinished_intents(path):
            try:
                os.replace(path, path.with_name(JOURNAL_ROTATED))
            except OSError as exc:
                raise StateDirError(
                    f"cannot move the journal {path} to {JOURNAL_ROTATED}: {_reason(exc)}; "
                    "it goes on growing until it can be moved"
                ) from None

    # -- inventory -------------------------------------------------------------------------

    def _read_file(
        self, name: str, holds: str, afresh: str, *, limit: int = MAX_STATE_FILE_BYTES,
        what: str = "a state file",
    ) -> str | None:
        """The text of a state file, or None when there is none (a first run, or a state
        directory not made yet). One that exists but cannot be read, or holds more than
        `limit` bytes, is an error, never an empty start: that would forget what it `holds`
        and then overwrite it."""
        path = self.path / name
        try:
            return bounded.read_at_most(path, limit, what).decode("utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except bounded.FileTooLarge as exc:
            reason = f"the file {exc.reason}"
        except PermissionError as exc:
            # Nothing is wrong with the file: starting afresh would throw away what it holds
            # for want of running as the right user.
            raise StateDirError(
                _damaged(path, _reason(exc), holds, self._not_yours(path))
            ) from None
        except OSError as exc:
            reason = _reason(exc)
        except UnicodeDecodeError:
            reason = "not UTF-8"
        raise StateDirError(_damaged(path, reason, holds, afresh))

    def _not_yours(self, path: Path) -> str:
        """What to do about a state file this user may not read, naming who owns the state
        directory when that can be said."""
        try:
            uid = self.path.stat().st_uid
        except OSError:
            owner = ""
        else:
            try:
                owner = f" ({pwd.getpwuid(uid).pw_name}, uid {uid})"
            except KeyError:
                owner = f" (uid {uid})"
        return (
            f"run reconciler as the user that owns the state directory{owner}, or fix the "
            f"permissions of {path.name} so that this user may read it; do not remove it, "
            "which would lose what it holds"
        )

    def _read_json(self, name: str, holds: str, afresh: str) -> dict[str, Any] | None:
        text = self._read_file(name, holds, afresh)
        if text is None:
            return None
        try:
            data = json_text.loads(text)
        except json_text.TooComplex as exc:
            problem = str(exc)
        except ValueError as exc:
            problem = f"not JSON ({exc})"
        else:
            if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
                return data
            problem = "not an object of objects"
        raise StateDirError(_damaged(self.path / name, problem, holds, afresh))

    def read_inventory(self, audience: Audience) -> Inventory:
        """The inventory; a damaged one is said to `audience` (`plan.advice`), as what its
        loss costs depends on who prunes."""
        holds = (
            "the deletion policy, organisation and Zap URL of each gateway applied, the "
            "Novacore site of each Site, the Flatpeak locations applied and the Enapter "
            "config files written"
        )
        afresh = (
            "repair it, or remove it to start afresh: a gateway no longer declared is then "
            f"released{_BY_PRUNE.to(audience)} only if "
            "its deletionPolicy Release is declared again, a Site no longer declared is "
            "not reported, and the config file of an Enapter device deleted later is left "
            "in place"
        )
        data = self._read_json(INVENTORY, holds, afresh)
        if data is None:
            return Inventory()
        # An entry of another shape is damage too (`inventory_shape`): below, each entry
        # is one the reconciler writes or wrote.
        wrong = inventory_shape.problem(data)
        if wrong is not None:
            raise StateDirError(_damaged(self.path / INVENTORY, wrong, holds, afresh))
        inventory = Inventory(
            dict(data.get("gateways", {})),
            dict(data.get("orgs", {})),
            {
                name: RetiredSite(site["org"], site["id"])
                for name, site in data.get("sites", {}).items()
            },
            [
                LeftSite(site["site"], RetiredSite(site["org"], site["id"]))
                for site in data.get("left_sites", {}).values()
            ],
            {
                location_id: location["site"]
                for location_id, location in data.get("flatpeak_locations", {}).items()
            },
            {
                # Keyed by the device's id before a device could have several.
                file["path"]: _written_file(file, device_id=file.get("device_id", key))
                for key, file in data.get("enapter_config_files", {}).items()
            },
        )
        # Recorded since the inventory kept it: an older entry has none, and is looked for
        # in whatever account the settings name, as it always was.
        inventory.flatpeak_location_accounts = {
            location_id: location["account_sha256"]
            for location_id, location in data.get("flatpeak_locations", {}).items()
            if "account_sha256" in location
        }
        inventory.declared = _read_declared(data.get("declared_fields"))
        inventory.enapter_sites = {
            site_id: site["site"] for site_id, site in data.get("enapter_sites", {}).items()
        }
        inventory.zaps = {
            serial: RememberedZap(zap["gateway"], zap["site"], zap["url"])
            for serial, zap in data.get("zaps", {}).items()
        }
        # A config file recorded as being written, with the identity it has once written
        # (`enapter_files.put`): found in place, it is the file written, and replaces the
        # record of the one it replaced; not found, it was never put there and the record
        # of the file that is stays. Recorded so before the rename, not after it, a kill
        # right after the rename leaves it recorded all the same. Its temporary file gone
        # too, the write is over (renamed, which is what puts that identity in place) and
        # the pending record is only that: the next write of the inventory keeps the file's
        # record alone. Otherwise the pending record stays, for its temporary file to be
        # removed (`enapter_files.clear_leftovers`).
        for file in data.get("enapter_config_files_pending", {}).values():
            if not isinstance(file, dict):
                continue
            put = None
            written = file.get("written", file)  # before 'tmp': the identity at the top
            if isinstance(written, dict) and _is_written_file(written) and file.get("device_id"):
                put = _written_file(written, device_id=str(file["device_id"]))
                if put.is_in_place():
                    inventory.enapter_config_files[put.path] = put
                else:
                    put = None
            if _is_pending_file(file):
                pending = _pending_file(file)
                if put is None or _exists(pending.tmp) is not False:
                    inventory.enapter_config_files_pending[pending.tmp] = pending
        return inventory

    def write_inventory(self, inventory: Inventory) -> None:
        """Store the inventory whole; StateDirError, naming the file and why, when it
        cannot be (a full disk, a directory made read-only while the run went on)."""
        self._write_file(
            INVENTORY,
            "the inventory (what the runs applied, for when it is declared no more)",
            json.dumps(
                {
                    "gateways": inventory.policies,
                    "orgs": inventory.orgs,
                    "zaps": {
                        serial: dataclasses.asdict(zap) for serial, zap in inventory.zaps.items()
                    },
                    "sites": {
                        name: {"org": site.org_id, "id": site.site_id}
                        for name, site in inventory.sites.items()
                    },
                    # Keyed by site id: the file stays an object of objects.
                    "left_sites": {
                        left.where.site_id: {
                            "site": left.site, "org": left.where.org_id, "id": left.where.site_id
                        }
                        for left in inventory.left_sites
                    },
                    "flatpeak_locations": {
                        location_id: {"site": site} | (
                            {"account_sha256": account}
                            if (account := inventory.flatpeak_location_accounts.get(location_id))
                            else {}
                        )
                        for location_id, site in inventory.flatpeak_locations.items()
                    },
                    "enapter_sites": {
                        site_id: {"site": site}
                        for site_id, site in inventory.enapter_sites.items()
                    },
                    "enapter_config_files": {
                        path: dataclasses.asdict(file)
                        for path, file in inventory.enapter_config_files.items()
                    },
                    "declared_fields": _declared_record(inventory.declared),
                    "enapter_config_files_pending": {
                        tmp: dataclasses.asdict(file)
                        for tmp, file in inventory.enapter_config_files_pending.items()
                    },
                },
                indent=2,
                sort_keys=True,
            ),
        )

    def _write_file(self, name: str, what: str, text: str, *, private: bool = False) -> None:
        """`atomic_write` of the state file `name` (`what` it holds), an OSError made a
        StateDirError that says which file could not be written and why: a run stops on it
        with that message, as on any unusable state directory, not with a traceback, and a
        change that was recording a file it wrote is not reported as failing at that file."""
        path = self.path / name
        try:
            self.ensure()
            atomic_write(path, text, private=private)
        except OSError as exc:
            # The temporary file, when it is the one that could not be made or removed.
            where = f"{exc.filename}: " if exc.filename and str(exc.filename) != str(path) else ""
            raise StateNotWritten(
                f"cannot write {path}, {what}: {where}{_reason(exc)}",
                path=path,
                reason=f"{where}{_reason(exc)}",
                again=_FOUND_AGAIN,
            ) from None

    # -- credential ledger -----------------------------------------------------------------

    def read_credentials(self) -> CredentialLedger:
        """The ledger, or an empty one with a new key when neither file exists. A damaged
        file, or fingerprints without the key that made them, is an error: starting afresh
        would miss a password changed meanwhile, without a word."""
        holds = "the fingerprints of the MQTT passwords sent to devices"
        afresh = (
            "remove credentials.key and credentials.json to start afresh: the next apply "
            "records the passwords in place, and a change made before it is not seen"
        )
        text = self._read_file(CREDENTIALS_KEY, holds, afresh, limit=MAX_KEY_FILE_BYTES,
                               what="the key file")
        data = self._read_json(CREDENTIALS, holds, afresh)
        if text is None and data is None:
            return CredentialLedger(new_key=True)
        try:
            key = bytes.fromhex(text or "")
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            why = "missing" if text is None else f"not a key of {KEY_BYTES} bytes in hex"
            raise StateDirError(_damaged(self.path / CREDENTIALS_KEY, why, holds, afresh))
        devices = (data or {}).get("devices", {})
        # A fingerprint edited or cut short would differ from every password's: taken as
        # one, it would have each device's password seen as changed, and the device removed
        # and added again.
        for device, fingerprint in devices.items():
            if not is_fingerprint(fingerprint):
                why = (f"the fingerprint of {echo(device)} is not {FINGERPRINT_DIGITS} "
                       "lowercase hex digits")
                raise StateDirError(_damaged(self.path / CREDENTIALS, why, holds, afresh))
        return CredentialLedger(key, dict(devices))

    def write_credentials(self, ledger: CredentialLedger) -> None:
        """Store what was recorded (the caller holds the lock); the key first, so entries
        are never stored without the key that can check them."""
        if not ledger.dirty:
            return
        what = "the fingerprints of the MQTT passwords sent to devices"
        if ledger.new_key:
            self._write_file(CREDENTIALS_KEY, f"the key of {what}", ledger.key.hex(),
                             private=True)
            ledger.new_key = False
        self._write_file(
            CREDENTIALS,
            what,
            json.dumps({"devices": ledger.entries}, indent=2, sort_keys=True),
            private=True,
        )
        ledger.dirty = False


@dataclass(frozen=True)
class WrittenFile:
    """A config file the reconciler wrote for an Enapter device (`engine.enapter_files`):
    its absolute path, its identity right after the write, and the Enapter id of the
    device it was written for. A file whose identity is another since (replaced or edited
    by someone) is not the one written. `deleting`: the Site whose apply sent the
    device's delete, set before it is sent (an apply killed after the delete took effect
    leaves the file to the next one to remove); `replacing`: that delete was a replace's
    (the device deleted to be provisioned again), not a `--prune`'s. A record of an
    earlier version, which did not say, is read as a `--prune`'s."""

    path: str
    inode: int
    mtime_ns: int
    size: int
    device_id: str
    deleting: str = ""
    replacing: bool = False

    def is_stat(self, stat: os.stat_result) -> bool:
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size) == (
            self.inode, self.mtime_ns, self.size
        )

    def is_in_place(self) -> bool:
        """Whether the file at `path` is this one (a link put there is not)."""
        return self.found() is True

    def found(self) -> bool | None:
        """Whether the file at `path` is this one; None when that cannot be told: its
        directory cannot be looked into (permission denied there at that moment, an I/O
        error), which says neither that the file is gone nor that it is someone else's."""
        try:
            return self.is_stat(os.lstat(self.path))
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            return None


def _exists(path: str) -> bool | None:
    """Whether there is a file at `path` (a link counts); None when that cannot be told."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return None
    return True


def _written_file(data: dict[str, Any], *, device_id: str) -> WrittenFile:
    """A record read from the inventory (checked by `_is_written_file`)."""
    return WrittenFile(
        str(data["path"]), int(data["inode"]), int(data["mtime_ns"]), int(data["size"]),
        device_id, str(data.get("deleting") or ""), data.get("replacing") is True,
    )


def _declared_record(declared: dict[str, frozenset[str]]) -> dict[str, list[dict[str, list[str]]]]:
    """The fields each resource declared, grouped by the set declared: the resources of a
    fleet share a few shapes, and one entry per resource made the inventory of 1,000
    sites 2.5 MB, read again at every plan."""
    groups: dict[frozenset[str], list[str]] = {}
    for address, paths in declared.items():
        groups.setdefault(paths, []).append(address)
    return {"groups": [
        {"fields": sorted(paths), "resources": sorted(addresses)}
        for paths, addresses in sorted(groups.items(), key=lambda item: sorted(item[0]))
    ]}


def _read_declared(record: object) -> dict[str, frozenset[str]]:
    """`_declared_record` read back (an entry not of that shape is left out: no record is
    what an older inventory has, and only means no field is taken as removed)."""
    declared: dict[str, frozenset[str]] = {}
    groups = record.get("groups") if isinstance(record, dict) else None
    if not isinstance(groups, list):
        return declared
    for group in groups:
        if not isinstance(group, dict):
            continue
        fields, resources = group.get("fields"), group.get("resources")
        if isinstance(fields, list) and isinstance(resources, list):
            paths = frozenset(str(path) for path in fields)
            declared.update(dict.fromkeys(map(str, resources), paths))
    return declared


def _is_written_file(data: dict[str, Any]) -> bool:
    texts = all(isinstance(data.get(key, ""), str) for key in ("path", "device_id"))
    return texts and "path" in data and all(
        isinstance(data.get(key), int) for key in ("inode", "mtime_ns", "size")
    )


@dataclass(frozen=True)
class PendingFile:
    """A config file being written for an Enapter device (`engine.enapter_files.put`),
    recorded before its temporary file `tmp` is created, under a name no other write
    uses: whatever a kill leaves under that name is the reconciler's. `path`: where it is
    renamed to; `owner`: the process writing it (its pid and a token of its own, as
    `enapter_files` makes it); `written`: the file's identity once it is whole and synced
    (None before), which it keeps when renamed onto `path`."""

    tmp: str
    path: str
    device_id: str
    owner: str
    written: WrittenFile | None = None


def _pending_file(data: dict[str, Any]) -> PendingFile:
    """A pending record read from the inventory (checked by `_is_pending_file`)."""
    written = data.get("written")
    device_id = str(data["device_id"])
    return PendingFile(
        str(data["tmp"]), str(data["path"]), device_id, str(data["owner"]),
        _written_file(written, device_id=device_id) if isinstance(written, dict) else None,
    )


def _is_pending_file(data: dict[str, Any]) -> bool:
    written = data.get("written")
    texts = all(isinstance(data.get(key), str) for key in ("tmp", "path", "device_id", "owner"))
    return texts and (
        written is None or (isinstance(written, dict) and _is_written_file(written))
    )


@dataclass
class Inventory:
    """What earlier applies declared, kept for when it is declared no more: each gateway's
    deletion policy, the organisation it was claimed into and its Zap (name, Site, URL:
    `plan.retired_gateways`), and the Novacore site of
    each Site, and the sites Sites left for others (`plan.retired`), and the Flatpeak
    locations made or matched for Sites (`plan.retired_locations`), and the Enapter sites
    (`plan.retired_enapter_sites`), and the config file written for each Enapter device
    (`engine.enapter_files`)."""

    policies: dict[str, str] = field(default_factory=dict)  # serial -> deletionPolicy
    orgs: dict[str, str] = field(default_factory=dict)  # serial -> Novacore organisation
    sites: dict[str, RetiredSite] = field(default_factory=dict)  # Site name -> its site
    left_sites: list[LeftSite] = field(default_factory=list)
    # Flatpeak location id -> the Site an apply made or matched it for.
    flatpeak_locations: dict[str, str] = field(default_factory=dict)
    # Enapter device id -> the config file an apply wrote for it.
    # Path -> the config file written there (a device may have several: one its
    # configOutput names, and ones it named before, not removed yet).
    enapter_config_files: dict[str, WrittenFile] = field(default_factory=dict)
    # Temporary file -> the config file being written there, to be renamed into place
    # (`engine.enapter_files.put`); see `read_inventory`.
    enapter_config_files_pending: dict[str, PendingFile] = field(default_factory=dict)
    # Resource address -> the spec fields (paths, never values) it declared when last
    # applied (`model.declared`): what a later spec stops declaring (`plan.removed_fields`).
    declared: dict[str, frozenset[str]] = field(default_factory=dict)
    # Gateway serial -> its Gateway's name, Site and Zap URL: the Zap of one declared no
    # more is read when it is released (`plan.retired_gateways`). An older apply kept none.
    zaps: dict[str, RememberedZap] = field(default_factory=dict)
    # Enapter site id -> the Site an apply made or matched it for.
    enapter_sites: dict[str, str] = field(default_factory=dict)
    # Flatpeak location id -> the fingerprint of the account it was applied with
    # (`plan_origin.flatpeak_account`); none for one applied before it was kept. A location
    # is looked for, and forgotten when gone, in its own account only
    # (`engine.flatpeak_accounts`).
    flatpeak_location_accounts: dict[str, str] = field(default_factory=dict)

    def remember(self, serial: str, policy: str, org: str) -> None:
        self.policies[serial] = policy
        if org:
            self.orgs[serial] = org

    def forget(self, serial: str) -> None:
        self.policies.pop(serial, None)
        self.orgs.pop(serial, None)
        self.zaps.pop(serial, None)

    def retired_zaps(
        self, declared_serials: Collection[str]
    ) -> dict[str, RememberedZap | None]:
        """What is remembered of the Zap of each gateway declared no more that a plan may
        read (`plan.retired_gateways`): each one `release_orgs` lists (deletionPolicy
        Release), None for one applied before the Zaps were kept, and each one with Orphan
        whose Zap is still remembered (until an apply after its removal)."""
        return {
            serial: self.zaps.get(serial)
            for serial, policy in self.policies.items()
            if serial not in declared_serials
            and serial in self.orgs
            and (
                policy == DeletionPolicy.RELEASE.value
                or (policy == DeletionPolicy.ORPHAN.value and serial in self.zaps)
            )
        }

    def retired_sites(self, declared: Iterable[str]) -> dict[str, RetiredSite]:
        """The remembered Sites that `declared` (Site names) does not hold."""
        names = set(declared)
        return {name: site for name, site in self.sites.items() if name not in names}

    def applied_sites(self, declared: Iterable[str]) -> dict[str, RetiredSite]:
        """The remembered Sites that `declared` (Site names) holds."""
        return {name: self.sites[name] for name in declared if name in self.sites}

    def apply_site(self, name: str, where: RetiredSite) -> None:
        """Remember that Site `name` is applied to `where`; the site it was applied to
        before, if another, is then a site it left (reported while it exists), and one it
        comes back to is not."""
        before = self.sites.get(name)
        self.left_sites = [left for left in self.left_sites if left.where != where]
        if before is not None and before != where:
            self.left_sites.append(LeftSite(name, before))
        self.sites[name] = where

    def release_orgs(self, declared_serials: set[str]) -> set[str]:
        """Organisations of gateways remembered with deletionPolicy Release that are not
        declared any more. Observation lists their gateways even when no declared Site is
        left in them, so such a gateway is reported, and released with --prune."""
        return {
            self.orgs[serial]
            for serial, policy in self.policies.items()
            if policy == DeletionPolicy.RELEASE.value
            and serial not in declared_serials
            and serial in self.orgs
        }


def not_a_directory(path: Path) -> str | None:
    """Why `path` cannot be a directory, or None: it, or the nearest existing path above
    it, is something else ("it is a file, not a directory")."""
    for each in (path, *path.parents):
        try:
            found = os.stat(each)
        except (FileNotFoundError, NotADirectoryError):  # not there, or below a file
            continue
        except OSError:
            return None  # not to be told apart here; the caller's own error says it
        if stat.S_ISDIR(found.st_mode):
            return None
        what = "it" if each == path else str(each)
        kind = "a file" if stat.S_ISREG(found.st_mode) else "something else"
        return f"{what} is {kind}, not a directory"
    return None


def _reason(exc: OSError) -> str:
    """Why an OSError happened, as a message goes on: "no space left on device"."""
    reason = exc.strerror or type(exc).__name__
    return reason[:1].lower() + reason[1:]  # "a FIFO" (`bounded.NotARegularFile`) as is


# What releases a gateway no longer declared: the CLI's `--prune`.
_BY_PRUNE = Advice(cli=" by --prune", operator="")
# What a state file that could not be written leaves to the next run: the CLI's user runs
# it; the operator's next reconcile comes by itself, with no change of the object's spec.
_FOUND_AGAIN = Advice(
    cli="; the changes already made stay, and the next run finds them again by their "
    "natural keys once the file can be written",
    operator="; the changes already made stay, and the next reconcile tries again, "
    "finding them by their natural keys, once the file can be written",
)


def _damaged(path: Path, reason: str, holds: str, afresh: str) -> str:
    return f"cannot read {path}: {reason}. It holds {holds}; {afresh}"


def atomic_write(path: Path, text: str, *, private: bool = False) -> None:
    """Write `text` whole or not at all: a reader never sees half a file, and a failed
    write leaves no temporary file behind. `private` files (credentials) are readable by
    their owner only (0600) from their creation on."""
    tmp = write_temporary(path, text, private=private)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_temporary(
    path: Path,
    text: str,
    *,
    private: bool = False,
    tmp: Path | None = None,
    opened: Callable[[int], object] | None = None,
) -> Path:
    """The first half of `atomic_write`: the temporary file next to `path` (`tmp`, else
    `path` and TEMPORARY_SUFFIX), holding `text` and synced, for the caller to rename onto
    `path` (or remove). `opened` is called with its descriptor once it is made, before a
    byte is written (to lock it). A failed write leaves none behind."""
    tmp = tmp or path.with_name(path.name + TEMPORARY_SUFFIX)
    try:
        # Never writable by others, whatever the umask (which narrows it further): a file
        # of the state directory is what a later run believes, the inventory what files
        # it removes.
        mode = 0o600 if private else 0o644
        # A leftover is removed and the file made anew (O_EXCL): opened as it was, a symlink
        # left there (in a shared directory, by another user) would have the text, tokens
        # or keys, written into the file it points to, and that file's mode changed.
        tmp.unlink(missing_ok=True)
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            if opened is not None:
                opened(descriptor)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


@functools.lru_cache(maxsize=4)
def _utc_second(epoch: int) -> str:
    """ISO 8601 UTC of a whole second (formatted once per second, not once per line)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Journal:
    """Append-only JSON lines: `intent` before each external write, then `done` or
    `failed`. Each line is written and flushed to the operating system before the write
    it describes proceeds, so it survives the process being killed at any point.

    Lines reach the disk (fsync) shortly after, in a background thread that syncs whatever
    has accumulated (group commit), and for good in `close()`. An fsync per line on the
    event loop took 0.2-6 ms each and stopped every other request while it ran: two per
    write made a 3,500-write apply many times slower than its network floor. A host crash
    can lose the last few milliseconds of lines; that costs no correctness, since remote
    objects are found again by their natural keys, never through the journal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id = uuid.uuid4().hex[:12]
        # A raw descriptor: each line is one write(2), with no buffer to flush.
        self._fd: int | None = _open_journal(path)
        # `_line`'s text of the line's first keys, `{"ts": ..., "run": ..., `, and its second.
        self._head = ""
        self._head_second = -1
        self._unsynced = threading.Event()
        self._closing = False
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._syncer.start()

    def _sync_loop(self) -> None:
        while True:
            self._unsynced.wait()
            # Cleared before `_closing` is read: a close() after the read sets the event
            # again, so the next wait returns. Cleared after it, the wake-up of a close()
            # between the two was lost, and close() waited for this thread for ever.
            self._unsynced.clear()
            if self._closing:
                return
            fd = self._fd  # close() joins this thread before it lets go of the descriptor
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.fsync(fd)

    def close(self) -> None:
        if self._fd is None:
            return
        self._closing = True
        self._unsynced.set()
        self._syncer.join()
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, record: dict[str, Any]) -> None:
        # Keys in a fixed order (ts, run, address, operation, phase, details) as built, not
        # sorted: two lines per write of an apply, so each costs what it must and no more.
        if self._fd is None:
            raise ValueError(f"journal {self.path} is closed")
        try:
            os.write(self._fd, self._line(record))
        except OSError as exc:  # a full disk: the change fails, saying so, before it is sent
            raise StateNotWritten(
                f"cannot write the journal {self.path}: {_reason(exc)}",
                path=self.path,
                reason=_reason(exc),
            ) from None
        # Setting an event already set still takes its lock and wakes nobody; the syncer
        # clears it before it syncs, so a line written while it is set is synced after.
        if not self._unsynced.is_set():
            self._unsynced.set()

    def _line(self, record: dict[str, Any]) -> bytes:
        """`record` as a line of the journal: `json.dumps` of {ts, run, **record}, the
        text of its first two keys made once a second rather than encoded at each line."""
        second = int(time.time())
        if second != self._head_second:
            head = json.dumps({"ts": _utc_second(second), "run": self.run_id})
            self._head, self._head_second = head[:-1] + ", ", second
        if not record or "ts" in record or "run" in record:
            # Not one line of the shape the journal writes: encoded whole, as the keys merge.
            line = {"ts": _utc_second(second), "run": self.run_id, **record}
            return (json.dumps(line) + "\n").encode()
        return (self._head + json.dumps(record)[1:] + "\n").encode()

    def intent(self, address: str, operation: str, **detail: Any) -> None:
        self._write({"address": address, "operation": operation, "phase": "intent", **detail})

    def done(self, address: str, operation: str, **detail: Any) -> None:
        self._write({"address": address, "operation": operation, "phase": "done", **detail})

    def failed(self, address: str, operation: str, error: str) -> None:
        self._write({"address": address, "operation": operation, "phase": "failed", "error": error})


def unfinished_intents(path: Path, *, exclude_run: str | None = None) -> list[dict[str, Any]]:
    open_intents: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in _journal_records(path):
        if record.get("phase") == "settled":
            runs = record.get("runs")
            settled = {str(run) for run in runs} if isinstance(runs, list) else set()
            open_intents = {k: v for k, v in open_intents.items() if k[0] not in settled}
            continue
        key = (record.get("run", ""), record.get("address", ""), record.get("operation", ""))
        if not all(isinstance(part, str) for part in key):
            continue  # no line the journal wrote
        if record.get("run") == exclude_run:
            continue
        if record.get("phase") == "intent":
            open_intents[key] = record
        else:
            open_intents.pop(key, None)
    return list(open_intents.values())


# The longest journal line read: one is an address, an operation and a few ids, some
# 200 bytes. A longer one is no line the journal wrote, and is skipped unread.
_JOURNAL_LINE_BYTES = 64 * 2**10


def _journal_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of the journal at `path`, read a line at a time: what is kept of it is
    the intents still open, not the file, which grows by an apply's lines between
    rotations (`StateDir.settle`). A line that is no record (torn by a kill mid-write, not
    UTF-8, too long) is skipped: the journal is a record of what was done, and no run
    depends on it to find what it wrote."""
    try:
        journal = bounded.open_regular(path)
    except OSError:  # none yet, or no file to read (a FIFO there is refused when written)
        return
    with journal:
        while line := journal.readline(_JOURNAL_LINE_BYTES + 1):
            if len(line) > _JOURNAL_LINE_BYTES:
                while line and not line.endswith(b"\n"):  # the rest of it, a piece at a time
                    line = journal.readline(_JOURNAL_LINE_BYTES)
                continue
            try:
                record = json_text.loads(line.decode())
            except ValueError:  # also UnicodeDecodeError, and json_text.TooComplex
                continue
            if isinstance(record, dict):
                yield record


def _open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor of the regular file at `path`, opened with `flags` and created (`mode`,
    narrowed by the umask; writable by its owner alone) when missing. A FIFO, socket or
    device there is refused unopened or at once (NotARegularFile): opening a FIFO waits for
    the other end, forever when there is none, and what is written into one is not kept.
    O_NONBLOCK makes the open return at once (ENXIO for a FIFO opened to write that nobody
    reads); the descriptor's own type is checked, and it blocks again as a file's does."""
    try:
        descriptor = os.open(
            path, flags | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), mode
        )
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise bounded.NotARegularFile(str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise bounded.NotARegularFile(str(path))
    os.set_blocking(descriptor, True)
    return descriptor


def _missing_directories(path: Path) -> list[Path]:
    """The directories `StateDir.ensure` is about to make for `path`, deepest first."""
    missing: list[Path] = []
    for directory in (path, *path.absolute().parents):
        if directory.exists() or directory.is_symlink():
            break
        missing.append(directory)
    return missing


def _is_at(descriptor: int, path: Path) -> bool:
    """Whether the open file `descriptor` is still the one at `path`."""
    try:
        there = os.stat(path)  # followed, as the open of the lock file follows a link
    except OSError:
        return False
    here = os.fstat(descriptor)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _release(path: Path, handle: io.TextIOWrapper, made: list[Path]) -> None:
    """Let go of the lock `handle` holds on the lock file of the state directory `path`."""
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
    # A run that made the state directory and wrote nothing into it (refused: a stale
    # saved plan, an apply not confirmed, a failed read) leaves none behind: a command
    # refused creates no state. Removed while the lock is held, so a writer waiting on
    # this lock file sees it is gone and takes a new one. Not when the file at that path
    # is another (the directory was removed and made again): that one is not ours.
    if made and _is_at(handle.fileno(), path / LOCK):
        _remove_if_unused(path / LOCK, made)
    handle.close()


def _remove_if_unused(lock: Path, made: list[Path]) -> None:
    """Remove the lock file and the directories `made` for it, deepest first, when the run
    left nothing else in them; a directory something was written into stays, whole."""
    try:
        if os.listdir(lock.parent) != [LOCK]:
            return
        lock.unlink()
        for directory in made:
            directory.rmdir()
    except OSError:
        return  # something appeared meanwhile, or cannot be removed: left as it is


def _open_journal(path: Path) -> int:
    """The journal at `path`, opened to append a line at a time; StateDirError when it is
    a FIFO, socket or device (see `_open_regular`)."""
    try:
        return _open_regular(path, os.O_WRONLY | os.O_APPEND, 0o644)
    except bounded.NotARegularFile as exc:
        raise StateDirError(
            f"cannot write the journal {path}: {exc.strerror}; remove it, and a new journal "
            "starts in its place"
        ) from None


def command_line() -> str:
    return " ".join(["reconciler", *sys.argv[1:]])[:200]
