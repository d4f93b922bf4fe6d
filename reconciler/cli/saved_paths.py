"""Where `apply PLANFILE` reads the desired state a saved plan names, and which state and
secrets directories it uses.

`plan --out` records its paths as given (often relative: `plan sites --out plan.json`)
and, since plan format 1.3, the directory it ran in (`inputs.working_directory`), as
Terraform records a plan's working directory. A relative path is read in that directory
while it holds the files the plan was made from; otherwise in the current directory, so
that a plan made in CI applies from another checkout of the same commit. Whichever is read,
the desired-state fingerprint must match, as before. When no directory holds the paths,
the error names the path, where it was looked for, and what to do.

A relative state or secrets directory (the defaults `.reconciler` and `secrets` included)
is taken in the directory the desired state is read in, as the paths are: applied from
elsewhere, the apply works there (`working_in`) and uses the memory of earlier applies and
the secret files the plan was made with, not empty ones of the current directory. Since
plan format 1.6 the plan records its state directory (`inputs.state_directory`), and is
refused with another: the plan rests on what that directory remembers (deletion policies,
retired sites, declared fields), and an apply recorded elsewhere would leave it to forget
what was done. It records its secrets directory too (`inputs.secrets_directory`), and a
fleet that reads passwords from secret files is refused with another: the plan says which
of them changed since they were sent, and another directory's would make it stale for no
reason it could name."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from reconciler.engine.config import Settings
from reconciler.engine.credentials import mqtt_passwords
from reconciler.errors import PlanError
from reconciler.model.fleet import Fleet

Loader = Callable[[list[str]], Fleet]
Fingerprint = Callable[[Fleet], str]


class Read(NamedTuple):
    fleet: Fleet
    paths: list[str]  # as read: relative ones joined to `directory`
    directory: str  # where relative paths were read (the plan's, or the current one)


def load(
    plan_file: str, saved: dict[str, Any], load_fleet: Loader, fingerprint: Fingerprint
) -> Read:
    """The fleet a saved plan's paths hold, the paths it was read from, and where.

    Raises PlanError when no candidate directory holds every path, or when what was read
    declares something else than the plan was made from (the desired state changed)."""
    paths: list[str] = list(saved["inputs"]["paths"])
    recorded = saved["inputs"].get("working_directory")
    here = os.getcwd()
    candidates = [d for d in dict.fromkeys([recorded, here]) if isinstance(d, str) and d]
    seen: set[tuple[str, ...]] = set()
    tried: list[tuple[str, list[str]]] = []  # directories lacking some path, and which
    changed: list[str] = []  # directories holding every path, but other declarations
    for directory in candidates:
        resolved = [str(Path(directory, p)) for p in paths]  # an absolute path stays as it is
        if tuple(resolved) in seen:
            continue  # only absolute paths: the same files whatever the directory
        seen.add(tuple(resolved))
        missing = [p for p, full in zip(paths, resolved, strict=True) if not os.path.lexists(full)]
        if missing:
            tried.append((directory, missing))
            continue
        fleet = load_fleet(resolved)
        if fingerprint(fleet) == saved["inputs"].get("desired_sha256"):
            return Read(fleet, resolved, directory)
        changed.append(directory)
    if changed:
        raise PlanError(
            f"the desired state changed since the plan was made ({', '.join(paths)} read in "
            f"{' and in '.join(changed)}); run `reconciler plan` again"
        )
    raise PlanError(_missing_message(plan_file, paths, recorded, here, tried))


def _missing_message(
    plan_file: str,
    paths: list[str],
    recorded: str | None,
    here: str,
    tried: list[tuple[str, list[str]]],
) -> str:
    missing = list(dict.fromkeys(p for _, gone in tried for p in gone))
    absolute = [p for p in missing if Path(p).is_absolute()]
    relative = [p for p in missing if p not in absolute]
    lines = [f"the saved plan {plan_file} names paths that could not be found:"]
    lines += [f"  {p} does not exist" for p in absolute]
    if relative:
        named = ", ".join(relative)
        if recorded:
            where = "there" if recorded == here else f"there nor in {here} (the current directory)"
            lines.append(
                f"  {named}: relative to {recorded}, where the plan was made; not found {where}"
            )
            lines.append(
                f"Run `reconciler apply` from {recorded}, or from a directory that holds the "
                f"same files at {named}."
            )
        else:
            lines.append(
                f"  {named}: not found in {here} (the current directory); the plan does not "
                "record the directory it was made in (made by an older reconciler)"
            )
            lines.append("Run `reconciler apply` from the directory the plan was made in.")
    else:
        lines.append("Make the plan again (`reconciler plan ... --out FILE`).")
    return "\n".join(lines)


def relative_dirs(settings: Settings) -> list[str]:
    """Which of the state and secrets directories are relative, as `NAME (VARIABLE)`."""
    return [
        f"{value} ({variable})"
        for value, variable in (
            (settings.state_dir, "RECONCILER_STATE_DIR"),
            (settings.secrets_dir, "RECONCILER_SECRETS_DIR"),
        )
        if not os.path.isabs(value)
    ]


def moves(settings: Settings, directory: str) -> bool:
    """Whether the apply works in `directory` rather than the current one: only when a
    relative state or secrets directory would name another directory there."""
    return bool(relative_dirs(settings)) and not _same(directory, os.getcwd())


def for_elsewhere(settings: Settings) -> Settings:
    """`settings` with the CA bundle absolute, so that it stays the current directory's
    file once the apply works in the plan's (`working_in`): the other paths the settings
    name were read already, and the state and secrets directories are meant there."""
    bundle = settings.ca_bundle
    return dataclasses.replace(settings, ca_bundle=os.path.abspath(bundle)) if bundle else settings


@contextlib.contextmanager
def working_in(directory: str | None) -> Iterator[None]:
    """Work in `directory` (None: where it is) until the block ends, then where it was.
    The apply of a saved plan runs where the plan was made, as Terraform's `-chdir`: every
    relative path there names what it named for the plan, so the plan made again reads and
    says the same."""
    if directory is None:
        yield
        return
    before = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the directory it ran in was removed meanwhile
            os.chdir(before)


def other_state_dir(
    plan_file: str, saved: dict[str, Any], settings: Settings, directory: str
) -> str | None:
    """Why the saved plan is not applied with `settings`' state directory (a relative one
    taken in `directory`), or None when it is the one the plan was made with, or the plan
    is older than format 1.6 and does not say."""
    recorded = saved["inputs"].get("state_directory")
    used = os.path.abspath(os.path.join(directory, settings.state_dir))
    if not isinstance(recorded, str) or _same(recorded, used):
        return None
    return (
        f"the saved plan {plan_file} was made with the state directory {recorded}, and this "
        f"apply would use {used}; nothing was applied. The plan rests on what that directory "
        "remembers of earlier applies (deletion policies, retired sites, declared fields), "
        "and the apply is recorded there. Apply it with the state directory it was made with "
        "(RECONCILER_STATE_DIR as it was set for the plan), or make the plan again with this "
        "one (`reconciler plan ... --out FILE`)"
    )


def other_secrets_dir(
    plan_file: str, saved: dict[str, Any], settings: Settings, directory: str, fleet: Fleet
) -> str | None:
    """Why the saved plan is not applied with `settings`' secrets directory (a relative one
    taken in `directory`), or None when it is the one the plan was made with, the fleet
    reads no password from a secret file (the directory plays no part), or the plan does
    not say (made by an older reconciler)."""
    recorded = saved["inputs"].get("secrets_directory")
    used = os.path.abspath(os.path.join(directory, settings.secrets_dir))
    if not isinstance(recorded, str) or _same(recorded, used):
        return None
    read = [
        f"secret {ref.name}/{ref.key} of device/{device.name}"
        for device, source, _ in mqtt_passwords(fleet)
        if (ref := source.secret_key_ref) is not None
    ]
    if not read:
        return None
    more = f" and {len(read) - 1} more" if len(read) > 1 else ""
    return (
        f"the saved plan {plan_file} was made with the secrets directory {recorded}, and "
        f"this apply would use {used}; nothing was applied. The plan read the MQTT "
        f"passwords its fleet takes from secret files there ({read[0]}{more}) and says "
        "whether each changed since it was sent; the apply sends them. Apply it with the "
        "secrets directory it was made with (RECONCILER_SECRETS_DIR as it was set for the "
        "plan), or make the plan again with this one (`reconciler plan ... --out FILE`)"
    )


def _same(one: str, other: str) -> bool:
    # A link to the directory, or a path through one (/tmp on macOS), is the same directory.
    return os.path.realpath(one) == os.path.realpath(other)
