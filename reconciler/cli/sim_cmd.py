"""`reconciler sim up`: run the simulators of every platform for a fleet (from site YAML or
generated) until interrupted, and print how to point the reconciler at them.

The parser only; what the command does is in `sim_run`, loaded when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from reconciler.cli.number_options import NumberOption

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


def run_up(args: argparse.Namespace) -> int:
    """Loads `sim_run` and the engine with it only now: `--help`, `validate` and the
    other commands that need no engine start without them."""
    from reconciler.cli import sim_run

    return sim_run.run_up(args)
