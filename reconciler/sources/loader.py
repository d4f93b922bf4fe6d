"""Load the desired state from files and directories into a validated `Fleet`.

Every problem in a run is collected (YAML syntax, schema, cross-resource rules) and
reported with file, line, column and field path; nothing is raised half-way. The first
problems of each file are kept and the rest counted (`diagnostic_cap`). The same
`validate_document` serves the operator, where a Kubernetes object has no file.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from reconciler import diagnostic_cap
from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.base import Resource
from reconciler.model.fleet import Fleet, check_fleet
from reconciler.model.kinds import KINDS
from reconciler.model.shared_parts import Sharing
from reconciler.name_list import closest
from reconciler.printable import echo
from reconciler.sources import bounded, field_help, utf8
from reconciler.sources.yaml_documents import ParsedDocument, Position, parse_yaml

YAML_SUFFIXES = (".yaml", ".yml")
# The most a desired-state file may hold. Parsing keeps every value with its position, so
# memory grows with a file many times over (a 100 MB file took 590 MB; one of many tiny
# documents takes about 110 bytes per byte). 4 MiB holds a fleet of 2,000 sites (the 10,000
# documents of benchmarks/load_documents.py take 3.2 MB in one file) and bounds the worst
# file to some 500 MB; a larger fleet is split into files, as a directory is read whole.
MAX_FILE_BYTES = 4 * 2**20


@dataclass
class LoadResult:
    """Resources that validated, where each came from, the diagnostics kept (the first of
    each file, see `diagnostic_cap`) and how many more each file had."""

    resources: list[Resource] = field(default_factory=list)
    origins: list[ParsedDocument] = field(default_factory=list)
    problems: diagnostic_cap.Collected = field(default_factory=diagnostic_cap.Collected)
    files: list[str] = field(default_factory=list)
    # (kind, name) of the documents that did not validate (references to them say so).
    invalid: set[tuple[str, str]] = field(default_factory=set)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.problems.kept

    @property
    def omitted(self) -> dict[str | None, int]:
        return self.problems.omitted

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    def fleet(self) -> Fleet:
        if self.diagnostics:
            raise ConfigError(self.diagnostics, omitted=self.omitted)
        return Fleet.of(self.resources)


def is_yaml_name(name: str) -> bool:
    """Whether a file name is one the loader reads: `.yaml` or `.yml`, in any case, and not
    an editor's lock file (Emacs keeps `.#site.yaml`, a link to nothing, while the file is
    being edited: neither a document nor a broken link to report)."""
    return name.lower().endswith(YAML_SUFFIXES) and not name.startswith(".#")


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[FsPath], list[Diagnostic]]:
    """YAML files named directly or found recursively under directories, sorted, each
    once: a file named twice (`f.yaml ./f.yaml`, or a directory and a file in it) would
    otherwise declare its resources twice. Sorted as a whole, not path by path: the
    order of the resources, and so of the plan, is the same whatever order the paths are
    given in (`sites/*.yaml` expands in the order of the shell's locale). Symbolically
    linked directories are followed (each real directory once, so a link to a parent
    ends); a link to nothing that looks like a YAML file is reported rather than skipped."""
    files: list[FsPath] = []
    problems: list[Diagnostic] = []
    seen: set[FsPath] = set()

    def add(path: FsPath) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            files.append(path)

    for raw in paths:
        if not os.fspath(raw):
            # Path("") is the current directory: an empty argument (an unset shell variable)
            # would quietly load whatever lies there.
            problems.append(Diagnostic("empty path: name a YAML file or a directory ('.' for "
                                       "the current directory)", file=""))
            continue
        path = FsPath(raw)
        try:
            is_dir, is_file, exists = path.is_dir(), path.is_file(), path.exists()
        except OSError as exc:  # a directory on the way that may not be looked into
            problems.append(_unreadable(path, exc))
            continue
        if is_dir:
            found, broken, special, unreadable = _yaml_files_under(path)
            for file in found:
                add(file)
            problems += [Diagnostic(_dangling(link), file=str(link)) for link in broken]
            problems += [Diagnostic(NOT_A_FILE, file=str(other)) for other in special]
            problems += [_unreadable(where, exc) for where, exc in unreadable]
        elif is_file:
            add(path)
        elif exists:
            problems.append(Diagnostic(NOT_A_FILE, file=str(path)))
        elif path.is_symlink():
            problems.append(Diagnostic(_dangling(path), file=str(path)))
        else:
            problems.append(Diagnostic("no such file or directory", file=str(path)))
    return sorted(files), problems


def _dangling(link: FsPath) -> str:
    """Why a symbolic link leads to no file: its target is missing, or it loops (a link to
    itself, or two links to each other), which `exists()` does not tell apart."""
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ("a symbolic link that leads back to itself (a loop), not to a file: point "
                    "it at a YAML file, or remove it")
    return "a symbolic link to nothing (its target is missing)"


def _unreadable(path: FsPath, exc: OSError) -> Diagnostic:
    """A path, or a directory under one, that cannot be looked into. It is an error, not
    skipped: what its files declare would otherwise count as removed (reported unmanaged,
    deleted by `--prune`)."""
    reason = exc.strerror or type(exc).__name__
    advice = ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        advice = (": give the user running the reconciler read permission, and search "
                  "permission on directories (chmod u+rx)")
    return Diagnostic(
        f"cannot be read ({reason}), so what its files declare is not known{advice}",
        file=str(path),
    )


# A FIFO, socket or device: reading one could wait forever (a FIFO nobody writes to), and
# it is no saved file of the desired state.
NOT_A_FILE = ("not a regular file (a FIFO, socket or device), so it is not read; name a YAML "
              "file or a directory")


def _yaml_files_under(
    top: FsPath,
) -> tuple[list[FsPath], list[FsPath], list[FsPath], list[tuple[FsPath, OSError]]]:
    """(YAML files, broken links with a YAML name, other things with a YAML name that are
    no regular file, what could not be looked into and why) under `top`, each sorted.
    Hidden files and directories (a name that starts with a dot) are left out, as Argo CD
    leaves them out: `.github/workflows/*.yml` of a repository named by its root is CI
    configuration, not desired state. A hidden file or directory named on the command line
    is read."""
    found: list[FsPath] = []
    broken: list[FsPath] = []
    special: list[FsPath] = []
    unreadable: list[tuple[FsPath, OSError]] = []
    walked: set[str] = set()

    def cannot_list(exc: OSError) -> None:
        unreadable.append((FsPath(exc.filename or top), exc))

    for directory, subdirectories, names in os.walk(top, onerror=cannot_list, followlinks=True):
        real = os.path.realpath(directory)
        if real in walked:  # a link back to a directory already read: do not loop
            subdirectories.clear()
            continue
        walked.add(real)
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in names:
            if name.startswith(".") or not is_yaml_name(name):
                continue
            file = FsPath(directory, name)
            try:
                if file.is_file():
                    found.append(file)
                elif file.is_symlink() and not file.exists():
                    broken.append(file)
                elif file.exists():
                    special.append(file)
            except OSError as exc:  # listed, but its directory may not be looked into
                unreadable.append((file, exc))
    return sorted(found), sorted(broken), sorted(special), sorted(unreadable,
                                                                  key=lambda u: u[0])


def _diagnostic(
    document: ParsedDocument, path: field_help.Path, message: str, *, key: bool = False
) -> Diagnostic:
    where = document.locate(path, key=key)
    return Diagnostic(
        message,
        file=document.file,
        line=where.line,
        column=where.column,
        path=field_help.render_path(path),
    )


def validate_document(document: ParsedDocument) -> tuple[Resource | None, list[Diagnostic]]:
    """Validate one parsed document against the model of its kind."""
    resource, problems, _ = _validate(document, None)
    return resource, problems


def _validate(
    document: ParsedDocument, room: int | None
) -> tuple[Resource | None, list[Diagnostic], int]:
    """`validate_document`, building at most `room` diagnostics (None: all) and counting
    the others: past the cap, locating and describing them is most of the work."""
    data = document.value
    if not isinstance(data, dict):
        return None, [
            _diagnostic(
                document,
                (),
                "a document must be a mapping with apiVersion, kind, metadata and spec",
            )
        ], 0
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None and kind is None and "format_version" in data and "changes" in data:
        # `apply plan.json sites/`, or a plan saved as plan.yaml among the sites: a saved
        # plan is applied on its own, as it was reviewed.
        return None, [_diagnostic(document, ("kind",), (
            "missing `kind`: this is a plan saved by `reconciler plan --out`, not a resource; "
            "apply it on its own: `reconciler apply` with this file as its only path"))], 0
    if model is None:
        known = ", ".join(KINDS)
        what = "missing `kind`" if kind is None else f"unknown kind {echo(kind)}"
        meant = closest(kind, KINDS) if isinstance(kind, str) else None
        if meant is not None:
            what += f" (did you mean {echo(meant)}?)"
        return None, [_diagnostic(document, ("kind",), f"{what}; known kinds: {known}")], 0
    try:
        return model.model_validate(data), [], 0
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        kept = errors if room is None else errors[:room]
        problems = []
        for error in kept:
            path, on_key = _error_path(error)
            message = field_help.describe(model, error)
            problems.append(_diagnostic(document, path, message, key=on_key))
        return None, problems, len(errors) - len(kept)


def _error_path(error: ErrorDetails) -> tuple[field_help.Path, bool]:
    """The field path of a pydantic error, and whether it blames the key rather than the
    value: an unknown field, or a mapping key that breaks a rule (pydantic ends the path of
    the latter with "[key]", which is no part of the document)."""
    loc = tuple(error["loc"])
    if loc and loc[-1] == "[key]":
        return loc[:-1], True
    return loc, error["type"] == "extra_forbidden"


def _kind_and_name(document: ParsedDocument) -> tuple[str, str]:
    """The kind and name an invalid document declares, as far as it says."""
    data = document.value if isinstance(document.value, dict) else {}
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return str(data.get("kind", "")), str(name or "")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while a fleet is loaded.

    Loading builds a few hundred thousand long-lived, acyclic objects (parsed values,
    positions, pydantic models). Each full collection rescans all of them, which took
    about 40 % of the time of loading 10,000 documents. Nothing here creates reference
    cycles, so reference counting frees what the load discards; collection resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_texts(
    texts: Sequence[tuple[str, str]], problems: Sequence[Diagnostic] = ()
) -> LoadResult:
    """Load `(file name, YAML text)` pairs: parse, validate, then check cross-resource rules.
    `problems` (of finding and reading the files) come first among the diagnostics."""
    with _collector_paused():
        return _load_texts(texts, problems)


def _load_texts(texts: Sequence[tuple[str, str]], found: Sequence[Diagnostic]) -> LoadResult:
    result = LoadResult(files=[name for name, _ in texts])
    result.problems.extend(list(found))
    sharing = Sharing()
    for name, text in texts:
        documents, problems = parse_yaml(text, name)
        result.problems.extend(problems)
        for document in documents:
            resource, problems, more = _validate(document, result.problems.room(name))
            result.problems.extend(problems)
            result.problems.count(name, more)
            if resource is None:
                result.invalid.add(_kind_and_name(document))
            else:
                # A valid document keeps only where it came from: its values and field
                # positions would more than double the fleet's memory. The rare document
                # that breaks a cross-resource rule is parsed again to locate the problem.
                document.value = None
                document.positions = {}
                document.key_positions = {}
                result.resources.append(sharing.resource(resource))
                result.origins.append(document)
    _locate_problems(result, dict(texts))
    return result


def _locate_problems(result: LoadResult, texts: dict[str, str]) -> None:
    """Add the problems of cross-resource rules to `result`, located in their files (those
    past the cap only counted: locating one may parse its file again)."""
    by_key: dict[tuple[str, str], list[ParsedDocument]] = {}
    for resource, origin in zip(result.resources, result.origins, strict=True):
        by_key.setdefault((resource.KIND, resource.name), []).append(origin)
    reparsed: dict[str, dict[int, ParsedDocument]] = {}

    def reparse(origin: ParsedDocument) -> ParsedDocument:
        if origin.file not in reparsed:
            documents, _ = parse_yaml(texts.get(origin.file, ""), origin.file)
            reparsed[origin.file] = {d.index: d for d in documents}
        return reparsed[origin.file].get(origin.index, origin)

    for problem in check_fleet(result.resources, result.invalid):
        origins = by_key[(problem.kind, problem.name)]
        origin = origins[min(problem.index, len(origins) - 1)]
        if not result.problems.keeps(origin.file):
            result.problems.count(origin.file)
            continue
        message = problem.message
        if problem.index > 0:  # a name declared again: say where it was declared first
            first = _diagnostic(reparse(origins[0]), problem.path, "")
            message += f" (first declared at {first.location()})"
        if problem.clashes_with is not None:  # say where the other one is, too
            kind, name, path = problem.clashes_with
            other = by_key.get((kind, name))
            if other:
                there = _diagnostic(reparse(other[0]), path, "")
                message += f" ({kind} {echo(name)} is at {there.location()})"
        result.problems.add(_diagnostic(reparse(origin), problem.path, message))


def load_paths(paths: Iterable[str | os.PathLike[str]]) -> LoadResult:
    """Load every YAML file under `paths`. Unreadable files become diagnostics."""
    files, problems = discover(paths)
    texts: list[tuple[str, str]] = []
    for path in files:
        data = _read(path)
        if isinstance(data, Diagnostic):
            problems.append(data)
            continue
        text, problem = utf8.decode(data, str(path))
        if problem is not None:
            problems.append(problem)
        else:
            texts.append((str(path), text))
    result = load_texts(texts, problems)
    result.files = [str(path) for path in files]  # found, read or not
    if not files and not problems:
        result.problems.add(
            Diagnostic("no YAML files (*.yaml, *.yml) found", file=", ".join(str(p) for p in paths))
        )
    return result


def _read(path: FsPath) -> bytes | Diagnostic:
    """The bytes of the file at `path`, or why they are not read: it cannot be, or it is
    larger than `MAX_FILE_BYTES` (refused before it is read, let alone parsed)."""
    try:
        return bounded.read_at_most(path, MAX_FILE_BYTES, "a desired-state file")
    except OSError as exc:
        return Diagnostic(f"cannot read file: {exc.strerror}", file=str(path))
    except bounded.FileTooLarge as exc:
        return Diagnostic(
            f"the file {exc.reason}, and is not read: split it into several files (a "
            "directory is read with its subdirectories)",
            file=str(path),
        )


def load_fleet(paths: Iterable[str | os.PathLike[str]]) -> Fleet:
    """The validated desired state under `paths`; ConfigError lists its problems."""
    return load_paths(paths).fleet()


def resource_from_object(
    obj: dict[str, Any], *, source: str
) -> tuple[Resource | None, list[Diagnostic]]:
    """Validate an object that has no file (a Kubernetes custom resource): diagnostics
    name the source and the field path, without line numbers."""
    document = ParsedDocument(file=source, index=0, value=obj, start=Position(0, 0))
    resource, problems = validate_document(document)
    return resource, [Diagnostic(p.message, file=source, path=p.path) for p in problems]
