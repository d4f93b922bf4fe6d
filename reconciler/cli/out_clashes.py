"""Whether a file a command would write (`plan --out`, `schema --out`, `sim up --env-file`
and `--state`) is one the reconciler reads or keeps.

Each is written whole over whatever the name holds (`sim up` removes an earlier env file
first). Named as a file of the desired state (`plan sites --out sites/home.yaml`, a slip
of the completion), it replaced the user's YAML with JSON or `export` lines; named as one
of the state directory's own files (`--out .reconciler/inventory.json`), it replaced the
memory of earlier applies, which nothing can rebuild. Either is refused before anything
is written, naming the file; so is a new name the loader would read in a desired-state
folder (`plan sites --out sites/plan.yaml`): the next plan of the folder would read the
JSON there as site documents. So is, for `schema` and `crds`, which are given no desired
state, a new YAML name in or below a folder of site files (`site_folder`).
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.engine.config import Settings, load_settings
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
    """The state directory of a command given no `--config` (`sim up`, `schema`): as `plan`
    and `apply` take it from the environment, RECONCILER_STATE_DIR, or the settings file
    RECONCILER_CONFIG names, or the default. Settings that do not load (this command does
    not use them, and says nothing of them: `plan` does) leave the first and the last."""
    try:
        return load_settings(check_files=False).state_dir
    except ConfigError:
        return os.environ.get("RECONCILER_STATE_DIR") or Settings.state_dir


def declares_resources(path: str) -> bool:
    """Whether `path` is a YAML file holding documents of the desired state (of its kinds,
    valid or not), for a command given no desired state (`schema`) to know a site file
    when it names one. Other YAML (`notes.yaml`) is the user's to replace."""
    if not os.path.isfile(path) or not loader.is_yaml_name(os.path.basename(path)):
        return False
    result = loader.load_paths([path])
    return bool(result.resources) or any(kind in KINDS for kind, _ in result.invalid)


# How many YAML files `site_folder` reads at the most, over all the folders it looks in.
_LOOK_AT_MOST = 200


def site_folder(out: str) -> tuple[str, str] | None:
    """(folder, a site file in it) when `out` is a name the loader reads (`*.yaml`, not
    hidden) in or below a folder that holds site files: `validate` or `plan` of that
    folder, which reads the folders below it too, would read what is written there as
    documents of the desired state. For a command given no desired state (`schema`,
    `crds`), which knows the folders only by what they hold. Looked at: the nearest folder
    that exists above `out` (`sites/` of `sites/new-site/x.yaml`) and every one above it,
    each by the files it holds itself, not those of its other folders: `deploy/crds/`
    beside `deploy/sites/` is not in a folder of site files, though `deploy/` holds some
    further down (as the loader reads: hidden directories skipped, links followed)."""
    where = Path(out)
    if not loader.is_yaml_name(where.name) or where.name.startswith("."):
        return None
    absolute = Path(os.path.abspath(out))  # `..` taken out, links not followed
    folder = absolute.parent
    while not folder.is_dir():
        if folder == folder.parent:
            return None
        folder = folder.parent
    looked = 0
    for above in (folder, *folder.parents):
        if any(part.startswith(".") for part in absolute.relative_to(above).parts[:-1]):
            return None  # in a hidden directory below it, which the loader skips
        # Said as `out` was given: relative to the working directory, or absolute.
        shown = str(above) if where.is_absolute() else os.path.relpath(above)
        found, looked = _site_file_in(shown, absolute, looked)
        if found is not None:
            return shown, found
        if looked >= _LOOK_AT_MOST:
            return None
    return None


def _site_file_in(folder: str, out: Path, looked: int) -> tuple[str | None, int]:
    """The first YAML file `folder` holds itself that declares resources, other than `out`,
    and how many YAML files were read so far (stopping at `_LOOK_AT_MOST`)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None, looked
    for name in names:
        file = os.path.join(folder, name)
        if name.startswith(".") or not loader.is_yaml_name(name) or _same(file, out):
            continue
        looked += 1
        if declares_resources(file):
            return file, looked
        if looked >= _LOOK_AT_MOST:
            break
    return None, looked


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


def refusal(option: str, out: str, problem: str, instead: str,
            own: str = "a file") -> ConfigError:
    """The error of `option` naming `out`, why it may not be written (`clash`), and what
    to name `instead` (`--out plan.json`), `own` (a file, a directory) of its own."""
    return ConfigError(
        [Diagnostic(f"cannot write {out}: {problem}; name {own} of its own ({instead})",
                    path=option)],
        subject="arguments",
    )
