"""`reconciler sim up`: run the simulators of every platform for a fleet (from site YAML or
generated) until interrupted, and print how to point the reconciler at them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.cli import common, exit_codes, out_clashes, problem_lines
from reconciler.cli.number_options import NumberOption, parse_all
from reconciler.engine.state import atomic_write
from reconciler.errors import ConfigError, Diagnostic

if TYPE_CHECKING:
    from reconciler.sim.fleet import SimFleet

EXAMPLES = """\
examples:
  reconciler sim up --fleet examples/sites --print-env      # prints `export` lines
  rm -f sim.env; reconciler sim up --fleet examples/sites --env-file sim.env &
  until [ -s sim.env ]; do kill -0 $! || break; sleep 0.2; done   # until they listen
  . ./sim.env && reconciler plan examples/sites
  reconciler sim up --sites 100 --write-fleet /tmp/fleet   # a generated fleet of 100 sites
  reconciler sim up --fleet examples/sites --state sim-state.json   # survives restarts
  reconciler sim up --fleet examples/sites --latency-ms 20 --error-rate 0.05 --seed 7

The simulators listen on 127.0.0.1 only. Stop them with Ctrl-C (or SIGTERM). The example
fleet's two MQTT passwords: see "Try it against simulators" in the README.
"""


_LATENCY = "an hour"
_RATE = "a fraction of the requests: 0.05 is one in 20"
# The numeric options of `sim up`, each checked before anything is written or started.
NUMBER_OPTIONS = (
    # Each generated site's MQTT devices are on a subnet of its own, 10.X.Y.0/24 for the
    # site's index: past 65536 sites they would repeat (`sim.generate`)...
    NumberOption("--sites", 1, 65536, whole=True, what="sites",
                 why="each has a subnet of its own"),
    # ...and their hosts are .100 to .255 of it.
    NumberOption("--devices-per-site", 0, 156, whole=True, what="devices",
                 why="a site's devices share one subnet"),
    NumberOption("--latency-ms", 0, 3_600_000, what="milliseconds", why=_LATENCY),
    NumberOption("--jitter-ms", 0, 3_600_000, what="milliseconds", why=_LATENCY),
    NumberOption("--error-rate", 0, 1, why=_RATE),
    NumberOption("--throttle-rate", 0, 1, why=_RATE),
    NumberOption("--seed", 0, None, whole=True),
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run simulators of the gateways and clouds",
        description="Simulators of the Zap, Novacore, Enapter, "
        "Flatpeak and Modbus devices on loopback.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_sub = parser.add_subparsers(title="sim commands", metavar="SIMCOMMAND")
    up = sim_sub.add_parser(
        "up",
        help="start simulators for a fleet and run until interrupted",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = up.add_mutually_exclusive_group(required=True)
    source.add_argument("--fleet", nargs="+", metavar="PATH", help="site YAML to simulate")
    source.add_argument("--sites", metavar="N",
                        help="generate a fleet of N sites (1 to 65536)")
    up.add_argument(
        "--devices-per-site",
        default=10,
        metavar="D",
        help="devices per generated site (default 10; 0 to 156)",
    )
    up.add_argument("--write-fleet", metavar="DIR", help="where to write the generated fleet YAML")
    # The one place a token is printed: the simulators' own, accepted nowhere else.
    up.add_argument(
        "--print-env", action="store_true",
        help="print `export` lines for the reconciler, with the simulators' own tokens and "
        "keys (accepted by nothing else); nothing else prints them",
    )
    up.add_argument("--env-file", metavar="FILE",
                    help="write the `export` lines to FILE (mode 600) once the simulators "
                    "listen; an earlier FILE is removed at start, so a script can wait for "
                    "it to appear (--print-env prints them too)")
    up.add_argument("--state", metavar="FILE", help="persist simulator state to FILE")
    up.add_argument("--latency-ms", default=0.0,
                    help="added latency per request (0 to 3600000)")
    up.add_argument("--jitter-ms", default=0.0,
                    help="random extra latency per request (0 to 3600000)")
    up.add_argument("--error-rate", default=0.0, help="fraction of 5xx answers (0 to 1)")
    up.add_argument("--throttle-rate", default=0.0, help="fraction of 429 answers (0 to 1)")
    up.add_argument("--seed", default=0, help="seed for faults and ids (0 or more)")
    up.set_defaults(run=run_up)
    parser.set_defaults(run=lambda args: (parser.print_help(), 1)[1])


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
        parse_all(args, NUMBER_OPTIONS)
        if args.env_file:
            common.check_writable(args.env_file, "--env-file", "name a file of its own")
        _refuse_over_what_is_read(args)
        sims = build(args)
        if args.env_file:  # once the fleet is known good: a refused start leaves it be
            _remove_env_file(args.env_file)
        # A --state file that cannot be restored is found in start(), before any server runs.
        return asyncio.run(_serve(sims, args))
    except ConfigError as error:
        problem_lines.print_diagnostics(error)
        return exit_codes.EXIT_ERROR


def _refuse_over_what_is_read(args: argparse.Namespace) -> None:
    """An --env-file naming a file of the desired state given with --fleet or of the state
    directory, which the earlier env file's removal and then the new one would replace,
    and a --state naming a file of that desired state, which the simulators' state would
    replace (and which, not being one, was refused advising to delete it): refused, naming
    it (`out_clashes`). The state directory's files are the reconciler's, not the
    simulators'."""
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
