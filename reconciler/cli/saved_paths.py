"""Where `apply PLANFILE` reads the desired state a saved plan names.

`plan --out` records its paths as given (often relative: `plan sites --out plan.json`)
and, since plan format 1.3, the directory it ran in (`inputs.working_directory`), as
Terraform records a plan's working directory. A relative path is read in that directory
while it holds the files the plan was made from; otherwise in the current directory, so
that a plan made in CI applies from another checkout of the same commit. Whichever is read,
the desired-state fingerprint must match, as before. When no directory holds the paths,
the error names the path, where it was looked for, and what to do."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.errors import PlanError
from reconciler.model.fleet import Fleet

Loader = Callable[[list[str]], Fleet]
Fingerprint = Callable[[Fleet], str]


def load(
    plan_file: str, saved: dict[str, Any], load_fleet: Loader, fingerprint: Fingerprint
) -> tuple[Fleet, list[str]]:
    """The fleet a saved plan's paths hold, and the paths it was read from.

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
            return fleet, resolved
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
