"""Whether a file a command would write (`plan --out`, `schema --out`, `sim up --env-file`
and `--state`) is one the reconciler reads or keeps.

Each is written whole over whatever the name holds (`sim up` removes an earlier env file
first). Named as a file of the desired state (`plan sites --out sites/home.yaml`, a slip
of the completion), it replaced the user's YAML with JSON or `export` lines; named as one
of the state directory's own files (`--out .reconciler/inventory.json`), it replaced the
memory of earlier applies, which nothing can rebuild. Either is refused before anything
is written, naming the file; so is a new name the loader would read in a desired-state
folder (`plan sites --out sites/plan.yaml`). So is, for `schema`, a new YAML name in a folder of site files
(`site_folder`): the next plan of the folder would read the JSON there as a site document.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.engine.config import Settings
from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.kinds import KINDS
from reconciler.sources import loader
from reconciler.state_files import state_file_in


def clash(out: str, paths: list[str], state_dir: str | None, *,
          writer: str = "the plan") -> str | None:
    """Why `out` may not be written by `writer` (it is a desired-state file under `paths`,
    or named as one in a folder of `paths`, or a file of the state directory `state_dir`,
    when one is asked about), or None. What
    is written is renamed over the name (`atomic_write`): a link there is replaced, not
    what it points to, so names are compared as themselves, links not followed past the
    directory that holds them."""
    try:
        written = os.lstat(out)
    except OSError:
        written = None  # not there yet: no file read is it
    if written is not None:
        files, _ = loader.discover(paths)
        for file in files:
            try:
                if os.path.samestat(written, os.lstat(file)):
                    return (f"it is a file of the desired state ({file}), which {writer} "
                            "would replace")
            except OSError:
                continue  # the loader said why it cannot be read
    for path in paths:
        if os.path.isdir(path) and read_in(out, path):
            # Not there yet, or not read yet: the next plan of the folder would read it.
            return (f"it is named as a file of the desired state in {path}, whose next "
                    f"`validate` or `plan` would read {writer} there as site documents")
    if state_dir is None:
        return None
    where = Path(out)
    try:
        inside = (where.parent.resolve() / where.name).relative_to(Path(state_dir).resolve())
    except (OSError, ValueError):  # a loop of links; or not under the state directory
        return None
    kept = state_file_in(inside.parts)
    if kept is not None:
        return (f"it is the state directory's {kept}, which holds what earlier applies did "
                f"and would be replaced by {writer}")
    return None


def environment_state_dir() -> str:
    """The state directory of a command that reads no settings file (`sim up`, `schema`):
    the one RECONCILER_STATE_DIR names, or the default, as `plan` and `apply` take it
    when no settings file names another."""
    return os.environ.get("RECONCILER_STATE_DIR") or Settings.state_dir


def declares_resources(path: str) -> bool:
    """Whether `path` is a YAML file holding documents of the desired state (of its kinds,
    valid or not), for a command given no desired state (`schema`) to know a site file
    when it names one. Other YAML (`notes.yaml`) is the user's to replace."""
    if not os.path.isfile(path) or not loader.is_yaml_name(os.path.basename(path)):
        return False
    result = loader.load_paths([path])
    return bool(result.resources) or any(kind in KINDS for kind, _ in result.invalid)


# How much of the folder that would hold a new YAML-named file `site_folder` looks at for a
# site file: a fleet folder shows one among its first files; a folder that is none (a home
# directory) is not walked whole for it.
_LOOK_AT_MOST = 200  # directories and YAML files


def site_folder(out: str) -> tuple[str, str] | None:
    """(folder, a site file in it) when `out` is a name the loader reads (`*.yaml`, not
    hidden) in a folder that holds site files: `validate` or `plan` of that folder would
    read what is written there as documents of the desired state. For a command given no
    desired state (`schema`), which knows the folders only by what they hold. The folder
    is the nearest that exists above `out` (`sites/` of `sites/new-site/x.yaml`), read as
    the loader reads it (hidden directories skipped, linked ones followed)."""
    where = Path(out)
    if not loader.is_yaml_name(where.name) or where.name.startswith("."):
        return None
    folder = where.parent
    while not folder.is_dir():
        if folder.name.startswith("."):  # a hidden directory to be: the loader skips it
            return None
        if folder == folder.parent:
            return None
        folder = folder.parent
    found = _first_site_file(folder, where)
    return None if found is None else (str(folder), found)


def _first_site_file(folder: Path, out: Path) -> str | None:
    """The first YAML file under `folder` that declares resources, other than `out`,
    looking at no more than `_LOOK_AT_MOST` directories and files."""
    looked = 0
    for directory, subdirectories, names in os.walk(folder, followlinks=True):
        subdirectories[:] = sorted(n for n in subdirectories if not n.startswith("."))
        looked += 1
        for name in sorted(names):
            file = os.path.join(directory, name)
            if name.startswith(".") or not loader.is_yaml_name(name) or _same(file, out):
                continue
            looked += 1
            if declares_resources(file):
                return file
            if looked >= _LOOK_AT_MOST:
                return None
        if looked >= _LOOK_AT_MOST:
            return None
    return None


def _same(file: str, out: Path) -> bool:
    try:
        return os.path.samefile(file, out)
    except OSError:
        return False  # `out` is not there yet


def read_in(out: str, directory: str) -> bool:
    """Whether `validate` or `plan` of `directory` would read a file named `out`, there or
    not yet: it is below `directory` (the directories on the way resolved, as `clash`
    takes them), named as the loader reads (`*.yaml`, `*.yml`) and in no hidden directory.
    For a folder that is written, not read, before the command runs (`sim up
    --write-fleet`), whose files `clash` cannot know yet."""
    where = Path(out)
    try:
        inside = (where.parent.resolve() / where.name).relative_to(Path(directory).resolve())
    except (OSError, ValueError):  # a loop of links; or not under the directory
        return False
    return (bool(inside.parts) and loader.is_yaml_name(inside.name)
            and not any(part.startswith(".") for part in inside.parts))


def refusal(option: str, out: str, problem: str, instead: str) -> ConfigError:
    """The error of `option` naming `out`, why it may not be written (`clash`), and what
    to name `instead` (`--out plan.json`)."""
    return ConfigError(
        [Diagnostic(f"cannot write {out}: {problem}; name a file of its own ({instead})",
                    path=option)],
        subject="arguments",
    )
