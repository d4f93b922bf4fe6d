"""What `reconciler sim up` does once `sim_cmd` has parsed its arguments: build the
simulators of a fleet, serve them until interrupted, and say how to reach them.

Loaded only when the command runs (`sim_cmd.run_up`), and the engine with it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli import common, exit_codes, out_clashes, problem_lines, sim_cmd
from reconciler.cli.number_options import parse_all
from reconciler.engine.state import atomic_write
from reconciler.errors import ConfigError, Diagnostic

if TYPE_CHECKING:
    from reconciler.sim.fleet import SimFleet


def export_lines(env: dict[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())


def build(args: argparse.Namespace) -> SimFleet:
    # Imported here: the simulators are not needed to parse the command line.
    from reconciler.sim.fleet import SimFleet
    from reconciler.sim.generate import write_fleet

    paths = args.fleet
    if args.sites is not None:
        directory = args.write_fleet or tempfile.mkdtemp(prefix="reconciler-fleet-")
        try:
            write_fleet(directory, args.sites, args.devices_per_site)
        except OSError as exc:
            raise _fleet_not_written(directory, exc) from None
        paths = [directory]
        sites = f"{args.sites} site{'s' if args.sites != 1 else ''}"
        print(f"generated {sites} in {directory}", file=sys.stderr)
    fleet = common.load(paths)
    sims = SimFleet(seed=args.seed, state_file=args.state)
    sims.seed_fleet(fleet, shared_modbus=args.sites is not None)
    for server in sims.http_servers():
        server.faults.latency_ms = args.latency_ms
        server.faults.jitter_ms = args.jitter_ms
        server.faults.error_rate = args.error_rate
        server.faults.throttle_rate = args.throttle_rate
    return sims


# Why a directory cannot hold the generated fleet, by the error making it gave.
_NOT_A_DIRECTORY = {
    FileExistsError: "it is a file, not a directory",
    NotADirectoryError: "a part of the path is a file, not a directory",
}


def _fleet_not_written(directory: str, exc: OSError) -> ConfigError:
    """The --write-fleet directory (or a file in it) that could not be made, and why."""
    why = _NOT_A_DIRECTORY.get(type(exc), exc.strerror or str(exc))
    # The path that failed may be a parent of the directory given, or a file in it.
    where = exc.filename if isinstance(exc.filename, str) else directory
    return ConfigError(
        [Diagnostic(f"cannot write {where}: {why}; --write-fleet names a directory for the "
                    "generated fleet's YAML files (DIR)", path="--write-fleet")],
        subject="arguments",
    )


def run_up(args: argparse.Namespace) -> int:
    try:
        parse_all(args, sim_cmd.NUMBER_OPTIONS)
        # First: the --write-fleet directory to be may not be there yet, which says less.
        _refuse_in_written_fleet(args)
        # Each file written, unless its folder is made with the fleet: checked once it is.
        written = [(option, out) for option, out in (("--env-file", args.env_file),
                                                     ("--state", args.state)) if out]
        later = [(option, out) for option, out in written if _folder_made_with_fleet(out, args)]
        for option, out in written:
            if (option, out) not in later:
                common.check_writable(out, option, "name a file of its own")
        _refuse_over_what_is_read(args)
        sims = build(args)
        for option, out in later:
            common.check_writable(out, option, "name a file of its own")
        if args.env_file:  # once the fleet is known good: a refused start leaves it be
            _remove_env_file(args.env_file)
        # A --state file that cannot be restored is found in start(), before any server runs.
        return asyncio.run(_serve(sims, args))
    except ConfigError as error:
        problem_lines.print_diagnostics(error)
        return exit_codes.EXIT_ERROR


def _folder_made_with_fleet(out: str, args: argparse.Namespace) -> bool:
    """Whether the folder of `out` is not there yet but writing the generated fleet makes
    it: the --write-fleet directory or one above it (`--write-fleet fleet --env-file
    fleet/sim.env`, `fleet` new). Whether `out` can be written there is then known only
    once the fleet is."""
    if args.sites is None or not args.write_fleet:
        return False
    folder = Path(out).parent
    if folder.is_dir():
        return False
    try:
        Path(args.write_fleet).resolve().relative_to(folder.resolve())
    except (OSError, ValueError):  # a loop of links; or the fleet is written elsewhere
        return False
    return True


def _refuse_over_what_is_read(args: argparse.Namespace) -> None:
    """An --env-file naming a file of the desired state given with --fleet or of the state
    directory, which the earlier env file's removal and then the new one would replace,
    and a --state naming a file of that desired state, which the simulators' state would
    replace (and which, not being one, was refused advising to delete it): refused, naming
    it (`out_clashes`). The state directory's files are the reconciler's, not the
    simulators'. Either named as a YAML file in the --write-fleet directory is refused as
    well (`_refuse_in_written_fleet`, called before this)."""
    paths = list(args.fleet or [])
    if args.env_file:
        problem = out_clashes.clash(args.env_file, paths, out_clashes.environment_state_dir(),
                                    writer="the env file")
        if problem is not None:
            raise out_clashes.refusal("--env-file", args.env_file, problem, "--env-file sim.env")
    if args.state and paths:
        problem = out_clashes.clash(args.state, paths, None, writer="the simulators' state")
        if problem is not None:
            raise out_clashes.refusal("--state", args.state, problem,
                                      "--state sim-state.json")


def _refuse_in_written_fleet(args: argparse.Namespace) -> None:
    """An --env-file or --state named as a YAML file in the --write-fleet directory of a
    generated fleet (`--write-fleet fleet --env-file fleet/sim.yaml`), checked before the
    fleet is written, which `clash` cannot see yet: the fleet's files would replace it
    (`sites-00000.yaml`), or it would be read with them as site documents, which it is
    not, by this command's own reading of the fleet at its next start and by every `plan`
    of the folder. Refused, naming both options; another name there (`fleet/sim.env`) the
    loader does not read."""
    if args.sites is None or not args.write_fleet:
        return  # a --fleet is read, not written: `clash` knows its files
    for option, out, writer, instead in (
            ("--env-file", args.env_file, "the env file", "--env-file sim.env"),
            ("--state", args.state, "the simulators' state", "--state sim-state.json")):
        if out and out_clashes.read_in(out, args.write_fleet):
            raise out_clashes.refusal(option, out, (
                f"it is a YAML file in the --write-fleet directory ({args.write_fleet}), which "
                f"holds the generated fleet: a plan of the fleet would read {writer} there as "
                "site documents (or a fleet file of that name replace it)"), instead)


async def _serve(sims: SimFleet, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await sims.start()
    sims.freeze_heap()
    try:
        lines = export_lines(sims.env())
        if args.env_file:
            # It holds the simulators' tokens: readable by its owner only.
            atomic_write(Path(args.env_file), lines, private=True)
        print(f"Novacore  {sims.novacore.url}", file=sys.stderr)
        print(f"Enapter   {sims.enapter.url}", file=sys.stderr)
        print(f"Flatpeak  {sims.flatpeak.url}", file=sys.stderr)
        for serial, url in sims.gateway_urls.items():
            print(f"Zap       {serial}  {url}", file=sys.stderr)
        for modbus in sims.modbus:
            host, port = modbus.endpoint
            print(f"Modbus    {host}:{port}  units {sorted(modbus.devices)}", file=sys.stderr)
        # Faults of any simulator, also one whose port `offline: refuse` closed.
        print(f"Control   {sims.control.url}  (/_sim/gateways/SERIAL/faults, "
              "/_sim/clouds/NAME/faults)", file=sys.stderr)
        if args.print_env:
            sys.stdout.write(lines)
        sys.stdout.flush()
        print("simulators running; Ctrl-C to stop", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await sims.stop()
        print("simulators stopped", file=sys.stderr)
    return exit_codes.EXIT_OK


def _remove_env_file(path: str) -> None:
    """No `--env-file` of an earlier run is left to be read while these simulators start:
    a script that waits for the file would load the old ports. The new one appears whole
    (`atomic_write`) once they listen."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(
            [Diagnostic(f"cannot remove the earlier {path}: {exc.strerror}", path="--env-file")],
            subject="arguments",
        ) from None
