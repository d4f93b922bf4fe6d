"""What `reconciler demo` does once `demo_cmd` has parsed its arguments: simulators for
the fleet, a plan, an apply, an empty plan, drift, and its correction.

Loaded only when the command runs (`demo_cmd.run`), and the engine with it."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.cli import apply_run, common, demo_cmd, exit_codes, problem_lines
from reconciler.errors import ConfigError
from reconciler.model.device import SecretSource
from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions

if TYPE_CHECKING:
    from reconciler.sim.fleet import SimFleet


def _demo_secrets(fleet: Fleet, directory: Path) -> dict[str, str]:
    """Stand-in values for the secrets the fleet references (files and variables)."""
    env: dict[str, str] = {}
    for device in fleet.devices.values():
        mqtt = device.spec.connection.mqtt if device.spec.connection else None
        source: SecretSource | None = mqtt.password_from if mqtt else None
        if source is None:
            continue
        if source.env:
            env[source.env] = "demo-password"
        elif source.secret_key_ref is not None:
            path = directory / source.secret_key_ref.name / source.secret_key_ref.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("demo-password", encoding="utf-8")
    return env


# The example sites installed with the package (`reconciler/examples` in the wheel).
PACKAGED_FLEET = Path(__file__).resolve().parents[1] / "examples" / "sites"


def run(args: argparse.Namespace) -> int:
    if args.paths == [demo_cmd.DEFAULT_FLEET] and not Path(demo_cmd.DEFAULT_FLEET).exists():
        # Outside a checkout: the copy installed with the package.
        if not PACKAGED_FLEET.is_dir():
            print(
                f"error: {demo_cmd.DEFAULT_FLEET} is not here, and no example sites were installed "
                "with the package; name the site YAML to use: `reconciler demo PATH`",
                file=sys.stderr,
            )
            return exit_codes.EXIT_ERROR
        args.paths = [str(PACKAGED_FLEET)]
    try:
        fleet = common.load(args.paths)
    except ConfigError as error:
        problem_lines.print_diagnostics(error)
        return exit_codes.EXIT_ERROR
    # The demo's state and stand-in secrets (and the simulators' credentials in its state)
    # are removed when it ends, however it ends: each run would otherwise leave a
    # directory behind in /tmp.
    work = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    try:
        return asyncio.run(_demo(fleet, args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _step(text: str, color: bool) -> None:
    line = f"\n==> {text}"
    print(f"\x1b[1m{line}\x1b[0m" if color else line, flush=True)


async def _demo(fleet: Fleet, args: argparse.Namespace, work: Path) -> int:
    # Imported here: the simulators and the engine are not needed to parse the command line.
    from reconciler.engine.config import load_settings
    from reconciler.engine.reconcile import Reconciler
    from reconciler.plan import render
    from reconciler.sim.fleet import SimFleet

    color = common.use_color(sys.stdout, args.no_color)
    sims = SimFleet()
    sims.seed_fleet(fleet)
    await sims.start()
    try:
        env = sims.env() | {
            "RECONCILER_STATE_DIR": str(work / "state"),
            "RECONCILER_SECRETS_DIR": str(work / "secrets"),
        }
        # Stand-in passwords for variables the fleet names, unless the user set them.
        for key, value in _demo_secrets(fleet, work / "secrets").items():
            os.environ.setdefault(key, value)
        settings = load_settings(env)
        _step(
            f"Simulators started: Novacore {sims.novacore.url}, {len(sims.zaps)} Zap gateways, "
            f"{len(sims.modbus)} Modbus device{'' if len(sims.modbus) == 1 else 's'}, "
            f"Enapter {sims.enapter.url}, "
            f"Flatpeak {sims.flatpeak.url}",
            color,
        )

        async def plan_and_show(title: str) -> Any:
            _step(title, color)
            async with Reconciler(fleet, settings) as reconciler:
                result = await reconciler.plan(PlanOptions(audience=Audience.CLI))
            sys.stdout.write(render.render_text(result.document(), color=color))
            return result

        async def apply(title: str) -> bool:
            _step(title, color)
            async with Reconciler(fleet, settings) as reconciler:
                result = await reconciler.plan(PlanOptions(audience=Audience.CLI))
                report = await reconciler.apply(result, progress=apply_run._progress(sys.stdout))
            apply_run.print_report(report, sys.stdout)
            return report.ok

        await plan_and_show("Plan: what the reconciler would do (nothing is written)")
        if not await apply("Apply: claim gateways, add devices, provision, enable publishing"):
            return exit_codes.EXIT_ERROR
        sims.reset_counts()
        result = await plan_and_show("Plan again: the fleet has converged")
        print(f"({sims.requests()} read requests, {sims.writes()} writes)")
        if result.plan.has_changes:
            return exit_codes.EXIT_ERROR

        _step("Drift: someone changes things behind the reconciler's back", color)
        for line in _make_drift(sims, fleet):
            print(f"  - {line}")
        await plan_and_show("Plan: the drift is detected")
        if not await apply("Apply: the drift is corrected"):
            return exit_codes.EXIT_ERROR
        final = await plan_and_show("Plan: back in sync")
        return exit_codes.EXIT_ERROR if final.plan.has_changes else exit_codes.EXIT_OK
    finally:
        await sims.stop()


def _make_drift(sims: SimFleet, fleet: Fleet) -> list[str]:
    """Turn off a DER's publishing on a Zap, rename a device in Novacore, and rename one
    in Enapter Cloud."""
    done: list[str] = []
    for device in fleet.devices.values():
        gateway = fleet.gateways.get(device.spec.gateway_ref or "")
        if gateway is None or gateway.spec.zap is None or device.spec.hardware_id is None:
            continue
        zap = sims.zaps[gateway.spec.zap.serial]
        state = zap.device(device.spec.hardware_id)
        enabled = [d["type"] for d in (state.ders if state else []) if d.get("enabled")]
        if enabled and not any("publishing" in line for line in done):
            zap.set_der(device.spec.hardware_id, enabled[0], enabled=False)
            done.append(
                f"publishing of {enabled[0]!r} on {device.name} turned off on gateway "
                f"{gateway.name}"
            )
        cloud = next(
            (
                d
                for d in sims.novacore.devices.values()
                if getattr(d, "hardware_id", None) == device.spec.hardware_id
            ),
            None,
        )
        if cloud is not None and not any("renamed" in line for line in done):
            sims.novacore.rename_device(cloud.id, "renamed in the cloud UI")
            done.append(f"{device.name} renamed in Novacore to 'renamed in the cloud UI'")
        if len(done) == 2:
            break
    return done + _enapter_drift(sims, fleet)


def _enapter_drift(sims: SimFleet, fleet: Fleet) -> list[str]:
    """Rename the first declared Enapter module that has a hardware id, in Enapter Cloud."""
    for device in fleet.devices.values():
        if device.spec.enapter is None or device.spec.hardware_id is None:
            continue
        remote = sims.enapter.by_hardware_id(device.spec.hardware_id)
        if remote is not None:
            sims.enapter.rename_device(remote.id, name="renamed in Enapter Cloud")
            return [f"{device.name} renamed in Enapter Cloud to 'renamed in Enapter Cloud'"]
    return []
