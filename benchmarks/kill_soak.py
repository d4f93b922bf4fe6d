"""Randomised crash-safety soak of `reconciler apply`: a run killed at any point and run
again converges with no duplicate and nothing lost.

Each scenario starts simulators (in this process, on loopback) for the example fleet
(`examples/sites`: Zap gateways and devices, Novacore sites and DERs, Enapter devices,
Flatpeak), slows them down (`--latency-ms`, with jitter) so that an apply takes a second or
two, and runs `reconciler apply --auto-approve` as a subprocess, interrupting it at a
seeded random moment (after a random number of journaled writes, or after a random time),
one to three times in a row. A final uninterrupted apply must succeed, and then:

- no duplicate anywhere: two Novacore sites of one name in an organisation, two Novacore
  devices of one hardware id, two DERs of one name on a device, one hardware id on two
  Zaps, two Enapter devices of one hardware id and channel or of one slug in a site, two
  Flatpeak locations or devices of one reference id;
- nothing declared missing: each declared Site, device and DER, the Zaps' devices exactly
  as declared, the Enapter config files written;
- one more apply is a no-op that sends no write;
- the state directory holds no orphan: no unsettled journal intent, no temporary file, the
  lock free, no Enapter config file that no declared Device names or recorded for a
  device that is gone.

Half of the latency delays a write's answer after it took effect (`answer_delay_ms`), so a
run killed then has made a write it never learns of.

Scenario kinds: `fresh` (an empty world), `prune` (a converged world from which part of the
fleet is removed, applied with `--prune`), `rename` (a converged world whose Sites get new
display names, some also new resource names, and sometimes an Enapter config file moved),
and `signals` (SIGINT or SIGTERM, sometimes a second one, sometimes a SIGKILL after them; a
run stopped by one signal alone must leave no write unfinished, since it lets the writes
in flight finish).

    .venv/bin/python benchmarks/kill_soak.py [--kills 100] [--seed N] [--latency-ms 150]
        [--jitter-ms 100] [--max-kills 3] [--kinds fresh,prune,rename,signals] [--keep DIR]

Prints one line per scenario, then the failed ones, each with the command line that runs it
again alone (`--kinds KIND --scenario-seed N`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ROOT = Path(__file__).resolve().parent.parent
_TESTS = _ROOT / "tests"
sys.path[:0] = [str(_TESTS / "engine")]  # the simulated world the engine tests use

from simworld import ThreadedSims, load  # noqa: E402

import reconciler  # noqa: E402
from reconciler.engine.state import StateDir, unfinished_intents  # noqa: E402
from reconciler.model.fleet import Fleet  # noqa: E402
from reconciler.plan.advice import Audience  # noqa: E402
from reconciler.sim.fleet import SimFleet  # noqa: E402
from reconciler.state_files import JOURNAL, STATE_FILES, TEMPORARY_SUFFIX  # noqa: E402

EXAMPLES = _ROOT / "examples" / "sites"
KINDS = ("fresh", "prune", "rename", "signals")
MQTT_PASSWORD = "demo-password"
Doc = dict[str, Any]


# -- the desired state -------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML as the reconciler reads it: a date stays the text it is written as."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def example_docs() -> list[Doc]:
    docs: list[Doc] = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        docs += [d for d in yaml.load_all(text, Loader=_Loader) if d]
    return docs


def write_docs(directory: Path, docs: list[Doc]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = "---\n".join(yaml.safe_dump(d, sort_keys=False, allow_unicode=True) for d in docs)
    (directory / "fleet.yaml").write_text(text, encoding="utf-8")


def named(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pruned(docs: list[Doc], rng: random.Random) -> list[Doc]:
    """The fleet with part of it removed: some of a whole site (a gateway whose
    deletionPolicy is Release, its devices), a Zap device, Enapter devices."""
    removals = [
        # The farm's gateway (Release) and its device; the Site stays declared.
        {("Gateway", "farm-gotland-zap"), ("Device", "farm-gotland-ferroamp"),
         ("DER", "farm-gotland-ferroamp-battery")},
        {("Device", "home-solna-p1")},
        {("Device", "h2-lab-gas-sensor")},
        {("Device", "h2-lab-gas-sensor"), ("Device", "h2-lab-ucm")},
        {("Device", "townhouse-malmo-powerwall")},
    ]
    chosen: set[tuple[str, str]] = set()
    for removal in rng.sample(removals, rng.randint(1, len(removals))):
        chosen |= removal
    kept = [d for d in docs if (d["kind"], d["metadata"]["name"]) not in chosen]
    devices = {d["metadata"]["name"] for d in kept if d["kind"] == "Device"}
    gateways = {d["metadata"]["name"] for d in kept if d["kind"] == "Gateway"}
    # What refers to something removed goes too (a DER of a removed device).
    return [
        d for d in kept
        if d["kind"] != "DER" or d["spec"].get("deviceRef") in devices
        if d["kind"] != "Device" or d["spec"].get("gatewayRef") in (None, *gateways)
    ]


def renamed(docs: list[Doc], rng: random.Random) -> list[Doc]:
    """Some Sites with a new display name; some of those with a new resource name too (what
    refers to them follows); sometimes the Enapter UCM's config in another file."""
    docs = copy.deepcopy(docs)
    sites = sorted(named(docs, "Site"))
    new_names: dict[str, str] = {}
    for name in rng.sample(sites, rng.randint(1, len(sites))):
        site = named(docs, "Site")[name]
        site["spec"]["displayName"] += " (renamed)"
        if rng.random() < 0.5:
            new_names[name] = f"{name}-renamed"
    if rng.random() < 0.5:  # and an Enapter config goes to another file
        output = named(docs, "Device")["h2-lab-ucm"]["spec"]["enapter"]["configOutput"]
        output["file"] = "secrets/h2-lab-ucm-moved.json"
    for doc in docs:
        if doc["kind"] == "Site" and doc["metadata"]["name"] in new_names:
            doc["metadata"]["name"] = new_names[doc["metadata"]["name"]]
        spec = doc.get("spec", {})
        if spec.get("siteRef") in new_names:
            spec["siteRef"] = new_names[spec["siteRef"]]
    return docs


# -- the simulated world -------------------------------------------------------------------------


def set_latency(sims: SimFleet, latency_ms: float, jitter_ms: float) -> None:
    """Half of the latency before a request is carried out, half after a write, before
    its answer: a run killed then has made a write it never learns of."""
    for server in sims.http_servers():
        server.faults.latency_ms = latency_ms / 2
        server.faults.jitter_ms = jitter_ms
        server.faults.answer_delay_ms = latency_ms / 2


def duplicates(sims: SimFleet) -> list[str]:
    """Two remote objects of one natural key, anywhere."""
    problems: list[str] = []

    def report(what: str, counts: Counter[Any]) -> None:
        problems.extend(f"{what} {key!r} x{n}" for key, n in counts.items() if n > 1)

    novacore = sims.novacore
    report("Novacore site", Counter((s.org_id, s.name) for s in novacore.sites.values()))
    report("Novacore device", Counter(d.hardware_id for d in novacore.devices.values()))
    report("Novacore DER", Counter((d.device_id, d.name) for d in novacore.ders.values()))
    report("Zap device", Counter(sn for zap in sims.zaps.values() for sn in zap.devices))
    enapter = sims.enapter.devices.values()
    # A UCM's hardware id is also that of the devices it runs, on channels of their own.
    report("Enapter device", Counter(
        (d.hardware_id, d.channel_id) for d in enapter if d.hardware_id))
    report("Enapter slug", Counter((d.site_id, d.slug) for d in enapter))
    report("Enapter site", Counter(s.name for s in sims.enapter.sites.values()))
    flatpeak = sims.flatpeak
    report("Flatpeak location", Counter(
        loc.get("reference_id") for loc in flatpeak.locations.values()))
    report("Flatpeak device", Counter(d.get("reference_id") for d in flatpeak.devices.values()))
    return problems


def missing(sims: SimFleet, fleet: Fleet, state_dir: Path) -> list[str]:
    """What the fleet declares that the simulators do not hold."""
    problems: list[str] = []
    novacore = sims.novacore
    for site in fleet.sites.values():
        if site.spec.novacore is not None:
            org = site.spec.novacore.org_id
            if not any(s.org_id == org and s.name == site.spec.display_name
                       for s in novacore.sites.values()):
                problems.append(f"Novacore site {site.spec.display_name!r} of {site.name}")
        if site.spec.enapter is not None and not any(
                s.name == site.spec.display_name for s in sims.enapter.sites.values()):
            problems.append(f"Enapter site {site.spec.display_name!r} of {site.name}")
        if site.spec.flatpeak is not None and not any(
                loc.get("reference_id") == site.name for loc in sims.flatpeak.locations.values()):
            problems.append(f"Flatpeak location of {site.name}")
    for gateway in fleet.gateways.values():
        zap = gateway.spec.zap
        if zap is None:
            continue
        expected = sorted(d.spec.hardware_id or "" for d in fleet.devices_of(gateway.name))
        actual = sorted(sims.zaps[zap.serial].devices)
        if actual != expected:
            problems.append(f"Zap {zap.serial} holds {actual}, not {expected}")
        for device in fleet.devices_of(gateway.name):
            found = [d for d in novacore.devices.values()
                     if d.hardware_id == device.spec.hardware_id and d.state == "active"]
            if not found:
                problems.append(f"Novacore device of {device.name}")
                continue
            ders = {novacore.ders[i].name for i in found[0].der_ids if i in novacore.ders}
            wanted = {der.name for der in device.spec.ders}
            wanted |= {d.spec.name for d in fleet.ders.values() if d.spec.device_ref == device.name}
            if not wanted <= ders:
                problems.append(f"DERs {sorted(wanted - ders)} of {device.name}")
    for device in fleet.devices.values():
        enapter = device.spec.enapter
        if enapter is not None:
            if not any(d.slug == enapter.slug or (
                    device.spec.hardware_id and d.hardware_id == device.spec.hardware_id)
                    for d in sims.enapter.devices.values()):
                problems.append(f"Enapter device of {device.name}")
            output = enapter.config_output
            if output is not None and output.file and not (state_dir / output.file).is_file():
                problems.append(f"config file {output.file} of {device.name}")
        flatpeak = device.spec.flatpeak
        if flatpeak is not None and not any(
                d.get("reference_id") == flatpeak.reference_id
                for d in sims.flatpeak.devices.values()):
            problems.append(f"Flatpeak device {flatpeak.reference_id} of {device.name}")
    return problems


def orphans(sims: SimFleet, fleet: Fleet, state_dir: Path) -> list[str]:
    """What a killed run left in the state directory and the next runs did not settle: an
    unsettled journal intent, a temporary file (or its record), the lock held, or an
    Enapter config file (credentials) that no declared Device names, or recorded for a
    device that is gone."""
    declared = {
        os.path.normpath(state_dir / d.spec.enapter.config_output.file)
        for d in fleet.devices.values()
        if d.spec.enapter is not None and d.spec.enapter.config_output is not None
        and d.spec.enapter.config_output.file
    }
    problems = [f"config file {p.relative_to(state_dir)} declared by no Device"
                for p in state_dir.rglob("*") if p.is_file()
                and p.relative_to(state_dir).parts[0] not in STATE_FILES
                and os.path.normpath(p) not in declared]
    inventory = StateDir(state_dir).read_inventory(Audience.CLI)
    problems += [f"config file {f.path} recorded for Enapter device {f.device_id}, which is gone"
                 for f in inventory.enapter_config_files.values()
                 if f.device_id not in sims.enapter.devices]
    problems += [f"config file {f.tmp} recorded as being written for Enapter device "
                 f"{f.device_id}" for f in inventory.enapter_config_files_pending.values()]
    problems += [f"unsettled journal intent {r.get('address')} {r.get('operation')}"
                for r in unfinished_intents(state_dir / JOURNAL)]
    problems += [f"temporary file {p.relative_to(state_dir)}"
                 for p in state_dir.rglob(f"*{TEMPORARY_SUFFIX}")]
    holder = StateDir(state_dir).holder()
    if holder is not None:
        problems.append(f"lock still held by {holder}")
    return problems


def _dump(sims: SimFleet, path: Path) -> None:
    """The simulators' state, for a failure to be looked into."""
    sims.state_file = path
    try:
        sims.save()
    finally:
        sims.state_file = None


def _reconciler_path() -> dict[str, str]:
    """PYTHONPATH for the applies: the `reconciler` this process imported comes first."""
    here = str(Path(reconciler.__file__).resolve().parent.parent)
    return {"PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}


# -- runs ------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One `reconciler apply` subprocess and how it ended."""

    how: str  # what interrupted it: "-" for nothing
    returncode: int
    finished_first: bool  # it ended before it could be interrupted
    log: Path
    # Its writes left with an intent and no outcome: none may be after one SIGINT or
    # SIGTERM, which lets the writes in flight finish.
    unfinished: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    kind: str
    seed: int
    kills: int = 0  # interruptions that hit a running apply
    runs: list[Run] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Soak:
    def __init__(self, work: Path, *, latency_ms: float, jitter_ms: float) -> None:
        self.work = work
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        # Writes an uninterrupted run of the scenario started (lowered by each run that
        # ended before its moment came): where the random moments are drawn from.
        self.writes_seen = 40

    def _intents(self, journal: Path) -> int:
        try:
            return journal.read_bytes().count(b'"phase": "intent"')
        except OSError:
            return 0

    def apply(self, where: Path, env: dict[str, str], *, prune: bool, log: Path,
              rng: random.Random | None = None, kind: str = "fresh") -> Run:
        """Run one apply; with `rng`, interrupt it at a random moment."""
        command = [sys.executable, "-m", "reconciler", "apply", str(where / "fleet"),
                   "--auto-approve", "--no-color", *(["--prune"] if prune else [])]
        journal = Path(env["RECONCILER_STATE_DIR"]) / JOURNAL
        before = self._intents(journal)
        earlier = {str(r.get("run")) for r in unfinished_intents(journal)}
        with open(log, "w", encoding="utf-8") as out:
            # In its own directory: `-m` would take a `reconciler` in the working directory
            # over the one this process runs (`_reconciler_path`).
            process = subprocess.Popen(command, env=env, cwd=where, stdout=out,
                                       stderr=subprocess.STDOUT)
            how = "-"
            finished_first = False
            try:
                if rng is not None:
                    finished_first = not self._wait_for_moment(process, rng, journal, before)
                    if finished_first:
                        self.writes_seen = max(1, self._intents(journal) - before)
                    if not finished_first:
                        how = self._interrupt(process, rng, kind)
                process.wait(timeout=120)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        unfinished = [f"{r.get('address')} {r.get('operation')}"
                      for r in unfinished_intents(journal) if str(r.get("run")) not in earlier]
        return Run(how, process.returncode, finished_first, log, unfinished)

    def _wait_for_moment(self, process: subprocess.Popen[bytes], rng: random.Random,
                         journal: Path, before: int) -> bool:
        """Wait for the moment to interrupt: after a random number of writes started (and
        a random part of one round trip), or after a random time. False: it ended first."""
        if rng.random() < 0.7:
            writes = rng.randint(0, self.writes_seen - 1)
            while self._intents(journal) - before < writes:
                if process.poll() is not None:
                    return False
                time.sleep(0.005)
            time.sleep(rng.uniform(0, (self.latency_ms + self.jitter_ms) / 1000))
        else:
            deadline = time.monotonic() + rng.uniform(0.3, 3.0)
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return False
                time.sleep(0.005)
        return process.poll() is None

    def _interrupt(self, process: subprocess.Popen[bytes], rng: random.Random,
                   kind: str) -> str:
        if kind != "signals":
            process.send_signal(signal.SIGKILL)
            return "KILL"
        first = rng.choice([signal.SIGINT, signal.SIGTERM])
        second = rng.choice([signal.SIGINT, signal.SIGTERM])
        process.send_signal(first)
        how = first.name[3:]
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0, (self.latency_ms + self.jitter_ms) / 1000))
            if process.poll() is None:
                process.send_signal(second)
                how += "+" + second.name[3:]
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                how += "+KILL"
        return how

    def scenario(self, kind: str, seed: int, max_kills: int) -> Scenario:
        rng = random.Random(seed)
        result = Scenario(kind, seed)
        self.writes_seen = {"prune": 5, "rename": 8}.get(kind, 40)
        started = time.monotonic()
        where = self.work / f"{kind}-{seed}"
        shutil.rmtree(where, ignore_errors=True)
        (where / "secrets" / "ferroamp-mqtt").mkdir(parents=True)
        (where / "secrets" / "ferroamp-mqtt" / "password").write_text(MQTT_PASSWORD)
        state_dir = where / "state"
        docs = example_docs()
        declared = docs
        if kind == "prune":
            declared = pruned(docs, rng)
        elif kind == "rename":
            declared = renamed(docs, rng)
        write_docs(where / "fleet", docs)
        prune = kind == "prune"
        with ThreadedSims(load(docs)) as sims:
            env = os.environ | sims.env() | _reconciler_path() | {
                "RECONCILER_STATE_DIR": str(state_dir),
                "RECONCILER_SECRETS_DIR": str(where / "secrets"),
                "AMBIBOX_MQTT_PASSWORD": MQTT_PASSWORD,
            }
            counter = iter(range(1000))

            def log() -> Path:
                return where / f"run-{next(counter):02d}.log"

            if kind in ("prune", "rename"):
                first = self.apply(where, env, prune=False, log=log())
                result.runs.append(first)
                if first.returncode != 0:
                    result.problems.append(f"the first apply exited {first.returncode}")
                    return self._done(result, started)
                write_docs(where / "fleet", declared)
            sims.call(set_latency, sims.sims, self.latency_ms, self.jitter_ms)
            for _ in range(rng.randint(1, max_kills)):
                run = self.apply(where, env, prune=prune, log=log(), rng=rng, kind=kind)
                result.runs.append(run)
                if run.how in ("INT", "TERM") and run.returncode in (0, 1) and run.unfinished:
                    result.problems.append(
                        f"stopped by one SIG{run.how}, {run.log.name} left writes unfinished: "
                        + ", ".join(run.unfinished))
                result.kills += not run.finished_first
            sims.call(set_latency, sims.sims, 0, 0)
            final = self.apply(where, env, prune=prune, log=log())
            result.runs.append(final)
            if final.returncode != 0:
                result.problems.append(f"the final apply exited {final.returncode}")
            fleet = load(declared)
            result.problems += sims.call(duplicates, sims.sims)
            result.problems += sims.call(missing, sims.sims, fleet, state_dir)
            result.problems += sims.call(orphans, sims.sims, fleet, state_dir)
            if result.problems:
                sims.call(_dump, sims.sims, where / "sims.json")
            sims.call(sims.sims.reset_counts)
            again = self.apply(where, env, prune=prune, log=log())
            result.runs.append(again)
            writes = sims.call(sims.sims.writes)
            if again.returncode != 0 or writes:
                result.problems.append(
                    f"the apply after it exited {again.returncode} and sent {writes} write(s)")
            elif "No changes" not in again.log.read_text(encoding="utf-8"):
                result.problems.append("the apply after it was not a no-op")
        return self._done(result, started)

    @staticmethod
    def _done(result: Scenario, started: float) -> Scenario:
        result.seconds = time.monotonic() - started
        return result


def soak(kills: int, seed: int, *, kinds: tuple[str, ...] = KINDS, latency_ms: float = 150,
         jitter_ms: float = 100, max_kills: int = 3, work: Path | None = None,
         echo: bool = True) -> list[Scenario]:
    """Run scenarios, kinds in turn, until `kills` interruptions hit a running apply."""
    master = random.Random(seed)
    scenarios: list[Scenario] = []
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kill-soak-")))
        runner = Soak(work, latency_ms=latency_ms, jitter_ms=jitter_ms)
        total = 0
        index = 0
        while total < kills:
            kind = kinds[index % len(kinds)]
            index += 1
            scenario_seed = master.randrange(2**32)
            scenario = runner.scenario(kind, scenario_seed, max_kills)
            scenarios.append(scenario)
            total += scenario.kills
            if echo:
                print(describe(scenario), flush=True)
    return scenarios


def describe(scenario: Scenario) -> str:
    runs = " ".join(f"{r.how}:{r.returncode}" for r in scenario.runs)
    status = "FAIL" if scenario.problems else "ok"
    line = (f"{status:4} {scenario.kind:7} seed={scenario.seed:<10} kills={scenario.kills} "
            f"{scenario.seconds:5.1f}s  runs: {runs}")
    for problem in scenario.problems:
        line += f"\n       {problem}"
    return line


@contextlib.contextmanager
def _kept(directory: str | None) -> Iterator[Path | None]:
    if directory is None:
        yield None
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    yield path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="interruptions in all")
    parser.add_argument("--seed", type=int, default=None, help="master seed (random if not given)")
    parser.add_argument("--scenario-seed", type=int, default=None,
                        help="run one scenario of this seed (of the first kind given)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--jitter-ms", type=float, default=100)
    parser.add_argument("--max-kills", type=int, default=3, help="interruptions in a row")
    parser.add_argument("--keep", default=None, help="keep the scenarios' files here")
    args = parser.parse_args(argv)
    kinds = tuple(args.kinds.split(","))
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with _kept(args.keep) as keep:
        if args.scenario_seed is not None:
            work = keep or Path(tempfile.mkdtemp(prefix="kill-soak-"))
            runner = Soak(work, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms)
            scenario = runner.scenario(kinds[0], args.scenario_seed, args.max_kills)
            print(describe(scenario))
            print(f"files: {work}")
            return 1 if scenario.problems else 0
        print(f"master seed {seed}", flush=True)
        started = time.monotonic()
        scenarios = soak(args.kills, seed, kinds=kinds, latency_ms=args.latency_ms,
                         jitter_ms=args.jitter_ms, max_kills=args.max_kills, work=keep)
    failed = [s for s in scenarios if s.problems]
    print(f"{sum(s.kills for s in scenarios)} interruptions in {len(scenarios)} scenarios, "
          f"{len(failed)} failed, {time.monotonic() - started:.0f}s (master seed {seed})")
    for scenario in failed:
        print(f"  failed: --kinds {scenario.kind} --scenario-seed {scenario.seed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
