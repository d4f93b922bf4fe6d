"""Pieces the plan, apply and watch commands share when they run: loading the desired
state, settings, the plan options, the state directory. They load the engine: what the
parsers and `validate` need as well lives apart (`exit_codes`, `problem_lines`,
`selection_options`), so that those start without it."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import stat
import sys
from collections.abc import Container, Iterable
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from reconciler.engine import mistyped_settings
from reconciler.engine.config import Settings, load_settings
from reconciler.engine.state import StateDir, not_a_directory
from reconciler.errors import ConfigError, Diagnostic, ReconcilerError
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import DeletionPolicy, Gateway
from reconciler.name_list import closest, listed
from reconciler.path_limits import path_problem
from reconciler.plan import targeting
from reconciler.plan.actions import Reason
from reconciler.plan.advice import Audience
from reconciler.plan.planner import Plan, PlanOptions
from reconciler.plan.retired_gateways import retired_gateways
from reconciler.printable import clipped_words, echo, printable
from reconciler.sources import bounded, loader

# The signals that stop an apply or the watch agent the gentle way (the writes in flight
# finish, nothing new starts): Ctrl-C, a service manager's stop, and SIGHUP, a terminal
# closed or an ssh session lost, whose default would cut writes off half-way.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def load(paths: list[str]) -> Fleet:
    """The fleet under `paths`; ConfigError carries every problem.

    The desired state lives until this short-lived command exits, so it is moved out of the
    garbage collector's sight (`gc.freeze`): on a large fleet every collection during the
    plan would otherwise rescan it, for nothing. (Not for the watch agent or the operator,
    which load again and again.)"""
    # What the command imported is frozen first: the collection below then looks at the
    # parse's objects only, not again at every module's (tens of milliseconds of a start).
    gc.freeze()
    fleet = loader.load_fleet(paths)
    gc.collect()  # the parse leaves garbage cycles behind; free them before freezing
    gc.freeze()
    return fleet


def settings(args: argparse.Namespace) -> Settings:
    loaded = load_settings(config_file=getattr(args, "config", None))
    warning = loaded.insecure_warning()
    if warning is not None:
        print(warning, file=sys.stderr)
    for line in mistyped_settings.warnings(os.environ):
        print(line, file=sys.stderr)
    return loaded


def warn_unknown_gateway_urls(
    settings: Settings, fleet: Fleet, args: argparse.Namespace, stream: TextIO | None = None
) -> None:
    """A warning on stderr naming the gateway URL overrides whose serial no declared
    gateway has (a typo would otherwise go unnoticed: that gateway is then reached at the
    URL of its YAML). A warning, not an error: settings are checked before and without the
    fleet, and one set of overrides often serves more than the fleet at hand (a plan of one
    directory of sites, a gateway just removed from git), where such entries are normal."""
    stream = stream or sys.stderr
    for line in gateway_url_warnings(settings, fleet, args):
        print(line, file=stream)


def unknown_gateway_serials(settings: Settings, fleet: Fleet) -> list[str]:
    """The serials of the gateway URL overrides that no gateway of `fleet` has."""
    return settings.unknown_gateway_serials(_declared_serials(fleet))


def _declared_serials(fleet: Fleet) -> list[str]:
    return sorted(g.spec.zap.serial for g in fleet.gateways.values() if g.spec.zap)


def gateway_url_warnings(
    settings: Settings, fleet: Fleet, args: argparse.Namespace, *, skip: Container[str] = ()
) -> list[str]:
    """The lines of `warn_unknown_gateway_urls`, leaving out the serials in `skip` (warned
    about already); none when no other override is unknown."""
    declared = _declared_serials(fleet)
    unknown = [s for s in settings.unknown_gateway_serials(declared) if s not in skip]
    remembered = _remembered_zaps(settings, fleet, declared) if unknown else {}
    # Used all the same: to reach the Zap of one removed from the desired state with
    # deletionPolicy Release, read while `--prune` releases it (`plan.retired_gateways`).
    unknown = [
        s for s in unknown
        if s not in remembered or remembered[s].spec.deletion_policy != DeletionPolicy.RELEASE
    ]
    if not unknown:
        return []
    config = getattr(args, "config", None) or os.environ.get("RECONCILER_CONFIG")
    sources = [
        variable
        for variable in ("RECONCILER_GATEWAY_URLS", "RECONCILER_GATEWAY_URLS_FILE")
        if os.environ.get(variable)
    ] + ([f"gateway_urls in {config}"] if config else [])
    lines = []
    for serial in unknown:
        close = closest(serial, declared)
        hint = f" (did you mean {close}?)" if close is not None else ""
        lines.append(
            printable(
                f"warning: {' / '.join(sources) or 'gateway URL overrides'}: no declared "
                f"gateway has serial {serial}{hint}; {_url_use(remembered.get(serial))}"
            )
        )
    lines.append(printable(f"warning: the declared gateway serials: {listed(declared)}"))
    return lines


def _url_use(remembered: Gateway | None) -> str:
    """What the warning says of the URL of an override no declared gateway has. One of a
    gateway removed with deletionPolicy Orphan is warned about all the same (a serial
    edited away from its override is most often a typo, which the warning is for), but it
    is not idle: the plans read that Zap, under the name they report it by, to say what was
    left on it, until an apply of the whole fleet forgets it (`engine.reconcile.remember`)."""
    if remembered is None:
        return "its URL is not used"
    return (
        "its URL is used only to read what was left on the removed gateway "
        f"{remembered.name} (deletionPolicy Orphan), until an apply of the whole fleet"
    )


def _remembered_zaps(
    settings: Settings, fleet: Fleet, declared: Iterable[str]
) -> dict[str, Gateway]:
    """Serial -> the gateway declared no more whose Zap the state directory's inventory
    remembers for a plan to read (`state.Inventory.retired_zaps`), as the plan names it
    (`plan.retired_gateways`: `NAME@SERIAL` when a declared Gateway has its name): with
    deletionPolicy Release, for its release; with Orphan, to report what was left on it.
    None when the inventory cannot be read (the plan says why)."""
    try:
        inventory = StateDir(Path(settings.state_dir)).read_inventory(Audience.CLI)
    except (ReconcilerError, OSError):
        return {}
    retired = retired_gateways(
        inventory.retired_zaps(set(declared)), inventory.orgs, inventory.policies, fleet
    )
    return {serial: gateway for serial, gateway in retired.items() if gateway is not None}


def plan_options(args: argparse.Namespace, fleet: Fleet) -> PlanOptions:
    problems = targeting.pattern_problems(fleet, [*args.target, *args.exclude])
    problems = problems or targeting.excluded_targets(fleet, args.target, args.exclude)
    if problems:
        raise ConfigError(
            [Diagnostic(problem, path="--target/--exclude") for problem in problems],
            subject="arguments",
        )
    return PlanOptions(
        audience=Audience.CLI, prune=args.prune, targets=tuple(args.target),
        excludes=tuple(args.exclude),
    )


def check_writable(path: str, option: str, advice: str = "") -> None:
    """ConfigError ("arguments") when a file cannot be written at `path`: said before the
    work whose result it would hold, not after. `advice` follows the reason when `path`
    names something no file may replace (`unreplaceable`)."""
    target = Path(path)
    directory = target.parent
    problem = None
    if (unusable := path_problem(path)) is not None:
        problem = unusable.removeprefix(f"{echo(path)} ")  # the path is said first
    elif target.is_dir():
        problem = "it is a directory"
    elif (special := unreplaceable(path)) is not None:
        problem = f"{special}; {advice}" if advice else special
    elif not directory.is_dir():
        problem = f"the directory {directory} does not exist"
    elif not os.access(directory, os.W_OK | os.X_OK):
        problem = f"the directory {directory} is not writable"
    if problem is not None:
        raise ConfigError(
            [Diagnostic(f"cannot write {path}: {problem}", path=option)], subject="arguments"
        )


def unreplaceable(path: str) -> str | None:
    """Why a file written whole beside `path` and renamed over it (`atomic_write`) must not
    be: `path` names a FIFO, socket or device, which the rename would make a file (/dev/null,
    run as root), or this command's own standard output or error, which carries what it
    shows (and /dev/stdout, a link, would become a file). None when nothing is there, or a
    regular file of its own."""
    try:
        found = os.stat(path)
    except OSError:
        return None  # nothing there yet; `check_writable` says why it cannot be made
    for descriptor, name in ((1, "standard output"), (2, "standard error")):
        try:
            if os.path.samestat(found, os.fstat(descriptor)):
                return f"it is the {name} of this command"
        except OSError:  # closed
            continue
    if not stat.S_ISREG(found.st_mode):
        return f"it is {bounded.NOT_REGULAR}"
    return None


def unusable_state_dir(path: str) -> str | None:
    """Why the state directory at `path` cannot be read, or None when it can (or does not
    exist yet: a first run, which `apply` creates it for)."""
    directory = Path(path)
    why = not_a_directory(directory)
    if why is not None:
        return why
    if directory.is_dir() and not os.access(directory, os.R_OK | os.X_OK):
        return "it is not readable"
    return None


def warn_unusable_state_dir(settings: Settings, stream: TextIO | None = None, *,
                            plans: str = "this plan does") -> None:
    """A plan reads what earlier applies remembered there; without it the plan is made
    all the same, but it says what it could not take into account (`apply`, which must
    record what it does, refuses such a directory)."""
    why = unusable_state_dir(settings.state_dir)
    if why is None:
        return
    print(
        printable(
            f"warning: cannot use the state directory {settings.state_dir} "
            f"(RECONCILER_STATE_DIR): {why}; {plans} not know the deletion policies "
            "remembered for gateways, the MQTT passwords last sent to devices (a changed "
            "password is not shown), or writes an earlier run left unfinished"
        ),
        file=stream or sys.stderr,
    )


def refused_notes(settings: Settings, errors: Iterable[BaseException | None]) -> list[str]:
    """A `note:` line of what to do for each credential `errors` say was refused (a token
    expired or wrong: `ProviderAuthError.credential_refused`), once per credential however
    many calls it failed: the error alone says HTTP 401 or 403, not which setting to
    change."""
    hints = (settings.refused_hint(error, when=None) for error in errors)
    return [f"note: {hint}" for hint in dict.fromkeys(h for h in hints if h is not None)]


def use_color(stream: TextIO, disabled: bool = False) -> bool:
    # no-color.org: only a non-empty NO_COLOR turns colour off (`NO_COLOR=` is unset).
    # TERM=dumb is a terminal that shows escape sequences as text (Emacs' shell, some CI
    # consoles): a TTY, but no colour.
    return (not disabled and stream.isatty() and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb")


def plan_problems(plan: Plan, offline: str) -> list[str]:
    """Why a plan cannot reach the desired state: each blocked change that has a cause of
    its own, and with --offline=fail each deferred site. The changes waiting on those are
    counted, not repeated: a secret missing on a thousand sites is a thousand lines, not
    three thousand (the plan above shows every one). Messages quote ids as declared and
    text as reported: escaped, as the plan shows them."""
    blocked = plan.blocked
    causes = [c for c in blocked if c.reason is not Reason.DEPENDENCY_BLOCKED] or blocked
    problems = [printable(clipped_words(f"{c.address}: {c.message}")) for c in causes]
    if len(blocked) > len(causes):
        waiting = len(blocked) - len(causes)
        verb = "waits" if waiting == 1 else "wait"
        problems.append(f"{_more(waiting)} {verb} on these (shown [BLOCKED] in the plan)")
    if offline == "fail":
        for first, more in first_of_each_site(plan.deferred):
            also = f" ({_more(more)} of site {first.site} deferred)" if more else ""
            problems.append(printable(clipped_words(f"{first.address}: {first.message}{also}")))
    return problems


class _OfSite(Protocol):
    site: str


_T = TypeVar("_T", bound=_OfSite)


def first_of_each_site(items: Iterable[_T]) -> list[tuple[_T, int]]:
    """The first of `items` (planned changes or apply outcomes) of each site, and how many
    more that site has: deferred ones share their site's reason, so one line says it."""
    by_site: dict[str, list[_T]] = {}
    for item in items:
        by_site.setdefault(item.site, []).append(item)
    return [(first, len(rest)) for first, *rest in by_site.values()]


def _more(count: int) -> str:
    return f"{count} more change" if count == 1 else f"{count} more changes"


def json_dump(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=False)
