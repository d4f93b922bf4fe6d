"""Whether a file a command would write (`plan --out`, `schema --out`, `sim up --env-file`
and `--state`) is one the reconciler reads or keeps.

Each is written whole over whatever the name holds (`sim up` removes an earlier env file
first). Named as a file of the desired state (`plan sites --out sites/home.yaml`, a slip
of the completion), it replaced the user's YAML with JSON or `export` lines; named as one
of the state directory's own files (`--out .reconciler/inventory.json`), it replaced the
memory of earlier applies, which nothing can rebuild. Either is refused before anything
is written, naming the file.
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
    or a file of the state directory `state_dir`, when one is asked about), or None. What
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


def refusal(option: str, out: str, problem: str, instead: str) -> ConfigError:
    """The error of `option` naming `out`, why it may not be written (`clash`), and what
    to name `instead` (`--out plan.json`)."""
    return ConfigError(
        [Diagnostic(f"cannot write {out}: {problem}; name a file of its own ({instead})",
                    path=option)],
        subject="arguments",
    )
