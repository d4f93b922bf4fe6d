"""`reconciler operator`: run the Kubernetes operator (kopf) in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from typing import Any

from reconciler.cli import exit_codes, library_logs, problem_lines

EXAMPLES = """\
examples:
  reconciler operator --all-namespaces
  reconciler operator --namespace fleet-north --liveness http://0.0.0.0:8080/healthz
  RECONCILER_OPERATOR_MODE=observe reconciler operator -A      # plan into status only

Endpoints and credentials come from RECONCILER_* variables (see README); the Helm chart in
charts/reconciler sets them from its values and Secrets.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the Kubernetes operator",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true",
        help="serve every namespace (with neither option: those RECONCILER_OPERATOR_NAMESPACES "
        "lists, comma-separated, or every one when it is unset)",
    )
    scope.add_argument(
        "-n", "--namespace", action="append", default=[],
        help="serve this namespace; repeatable",
    )
    parser.add_argument(
        "--liveness", metavar="URL", help="health endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging, pymodbus's own lines included"
    )
    parser.set_defaults(run=run)


def _kube_credentials_problem() -> str | None:
    """Why kopf could not log in at all, or None. Only a missing or broken configuration is
    caught here (no network is used): kopf would otherwise retry it every minute with a
    traceback, although nothing but a change of the environment can fix it."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return None
    except config.ConfigException as exc:
        in_cluster = str(exc)
    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
        return None
    except config.ConfigException as exc:
        kubeconfig = str(exc)
    return (
        f"no Kubernetes credentials: not in a cluster ({in_cluster}) and no usable "
        f"kubeconfig ({kubeconfig}); set KUBECONFIG, or run in a pod with a service account"
    )


def run(args: argparse.Namespace) -> int:
    # Imported here, not with the parser: kopf, the Kubernetes client and the engine are
    # what the operator runs, and what every other command starts without.
    import asyncio

    import kopf

    from reconciler.engine.config import load_settings
    from reconciler.errors import ConfigError
    from reconciler.operator import config as operator_config
    from reconciler.operator import stopping, watch_errors
    from reconciler.operator.handlers import Runtime, configure, register, register_login

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose:
        library_logs.shown()  # pymodbus's own lines, its frames too, for debugging
    # Checked before kopf starts: a bad variable is one clear error at start-up, not a
    # failure in every handler; and every bad one at once, the operator's own and the
    # engine's, not one per restart of a pod in CrashLoopBackOff.
    problems: list[str] = []
    try:
        config = operator_config.load()
    except operator_config.OperatorConfigError as exc:
        problems = [f"error: {problem}" for problem in exc.problems]
    try:
        settings = load_settings()
    except ConfigError as error:
        problems += [problem_lines.error_line(diagnostic) for diagnostic in error.diagnostics]
    if problems:
        count = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
        print("\n".join([*problems, f"invalid settings: {count}"]), file=sys.stderr)
        return exit_codes.EXIT_ERROR
    problem = _kube_credentials_problem()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return exit_codes.EXIT_ERROR
    namespaces = args.namespace or list(config.namespaces)
    clusterwide = bool(args.all_namespaces or not namespaces)
    # The namespaces served, as the handlers see them: a Site says when a gateway claimed
    # in its organisation may be declared where this operator does not look.
    config = dataclasses.replace(config, namespaces=() if clusterwide else tuple(namespaces))
    registry = kopf.OperatorRegistry()
    runtime = Runtime(config, settings, settle_heap=True)
    register(registry, runtime)
    register_login(registry)
    kopf_settings = kopf.OperatorSettings()
    watches = configure(kopf_settings, config)
    watch_errors.end_with_cleanup(registry, watches)
    asyncio.run(
        stopping.run(
            runtime.stop,
            kopf_settings,
            stop_flag=watches.stop,
            registry=registry,
            clusterwide=clusterwide,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
            peering_name=config.peering or None,
            priority=config.priority,
            standalone=not config.peering,
        )
    )
    if watches.failure is not None:
        # Last, after kopf's lines of its stop: what `kubectl logs --previous` ends with.
        print(f"error: {watches.failure}", file=sys.stderr)
        return exit_codes.EXIT_ERROR
    return exit_codes.EXIT_OK
