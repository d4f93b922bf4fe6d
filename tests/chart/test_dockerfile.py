"""The Dockerfile, checked without a Docker engine: its stages and instructions, the files
it copies (present, not ignored, enough to build the wheel), and the command it runs."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml
from chart_render import REPO
from dockerfile_model import Dockerfile, DockerIgnore, Stage, load
from setuptools import find_packages

from reconciler.cli import operator_cmd
from reconciler.cli.main import build_parser

DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "python3-dev", "libc6-dev", "cargo")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return load(DOCKERFILE)


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore.load(REPO / ".dockerignore")


@pytest.fixture(scope="module")
def final(dockerfile: Dockerfile) -> Stage:
    return dockerfile.stages[-1]


def test_two_stages_on_python_311_slim(dockerfile: Dockerfile) -> None:
    assert dockerfile.directives.get("syntax", "").startswith("docker/dockerfile:1")
    assert [s.base for s in dockerfile.stages] == ["python:3.11-slim", "python:3.11-slim"]
    assert dockerfile.stages[0].name == "build"


def test_the_build_stage_builds_wheels(dockerfile: Dockerfile) -> None:
    runs = " ".join(i.text for i in dockerfile.stage("build").all("RUN"))
    assert "pip wheel" in runs and "--wheel-dir /wheels" in runs


def test_the_final_stage_installs_the_wheels_into_a_venv_offline(final: Stage) -> None:
    [run] = final.all("RUN")
    options, words = run.flags()
    assert options["mount"] == "type=bind,from=build,source=/wheels,target=/wheels"
    command = " ".join(words)
    assert "python -m venv /opt/reconciler" in command
    assert "--no-index --find-links=/wheels" in command
    assert PYPROJECT["project"]["name"] in command
    assert "pip wheel" not in command
    assert final.env()["PATH"].startswith("/opt/reconciler/bin:")


def test_no_build_tools_in_the_final_image(final: Stage) -> None:
    text = " ".join(i.text for i in final.instructions)
    assert "apt-get install" not in text and "apk add" not in text
    for tool in BUILD_TOOLS:
        assert f" {tool} " not in f" {text} ", tool
    assert not final.all("COPY") and not final.all("ADD"), "only the bind-mounted wheels go in"


def test_runs_as_a_numeric_non_root_user(final: Stage, dockerfile_uid: int) -> None:
    user = final.last("USER")
    assert user is not None
    assert user.text == f"{dockerfile_uid}:{dockerfile_uid}"
    assert dockerfile_uid >= 10000
    # Nothing runs as root after the switch.
    assert all(i.keyword != "RUN" for i in final.instructions if i.line > user.line)
    run = " ".join(i.text for i in final.all("RUN"))
    assert f"--uid {dockerfile_uid}" in run and f"chown {dockerfile_uid}:{dockerfile_uid}" in run


def test_python_environment(final: Stage) -> None:
    env = final.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["RECONCILER_STATE_DIR"] == (final.last("WORKDIR") or pytest.fail("no WORKDIR")).text


def test_entrypoint_is_the_console_script(final: Stage) -> None:
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form() == ["reconciler"]
    assert PYPROJECT["project"]["scripts"]["reconciler"] == "reconciler.cli.main:main"


def test_default_command_runs_the_operator_cluster_wide(final: Stage) -> None:
    cmd = final.last("CMD")
    assert cmd is not None
    argv = cmd.exec_form()
    assert argv is not None, "CMD must use the exec form (no shell to forward signals)"
    args = build_parser().parse_args(argv)
    assert args.run is operator_cmd.run
    assert args.all_namespaces is True
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    exposed = (final.last("EXPOSE") or pytest.fail("no EXPOSE")).text
    assert exposed == "8080"


def _context(ignore: DockerIgnore) -> set[str]:
    """The files `docker build .` sends, as paths relative to the repository."""
    files = set()
    for root, dirs, names in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO).as_posix()
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = [d for d in dirs if not ignore.excluded(rel_root + d)]
        files.update(rel_root + n for n in names if not ignore.excluded(rel_root + n))
    return files


def _copied(stage: Stage, context: set[str]) -> dict[str, str]:
    """What the stage's COPY instructions put into the image: image path -> context path."""
    workdir = PurePosixPath("/")
    image: dict[str, str] = {}
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.text
            continue
        if instruction.keyword != "COPY":
            continue
        options, words = instruction.flags()
        assert "from" not in options, "copies between stages are bind mounts here"
        *sources, dest = words
        target = workdir / dest
        for source in sources:
            source = source.rstrip("/")
            matched = [f for f in context if f == source or f.startswith(source + "/")]
            assert matched, f"line {instruction.line}: COPY {source} matches no file in the context"
            for path in matched:
                if path == source:  # a file: into the directory, or as the named file
                    image[str(target / source if dest.endswith("/") else target)] = path
                else:
                    image[str(target / path[len(source) + 1:])] = path
    return image


def test_dockerignore_keeps_local_state_out(ignore: DockerIgnore) -> None:
    for path in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".pytest_cache/v/x",
                 ".mypy_cache/3.11/x.json", ".ruff_cache/x", "reconciler/__pycache__/main.pyc",
                 "energy_reconciler.egg-info/PKG-INFO", ".reconciler/journal.jsonl"):
        assert ignore.excluded(path), path
    for path in ("pyproject.toml", "README.md", "reconciler/cli/main.py", "reconciler/py.typed"):
        assert not ignore.excluded(path), path


def test_copied_files_are_enough_to_build_the_wheel(dockerfile: Dockerfile,
                                                    ignore: DockerIgnore) -> None:
    context = _context(ignore)
    image = _copied(dockerfile.stage("build"), context)
    src = {p[len("/src/"):] for p in image if p.startswith("/src/")}
    assert "pyproject.toml" in src
    assert PYPROJECT["project"]["readme"] in src
    # Every package setuptools would find in the checkout, with every module, is copied.
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(where=str(REPO), include=find["include"])
    assert "reconciler" in packages and "reconciler.operator" in packages
    for package in packages:
        directory = REPO / package.replace(".", "/")
        for module in directory.glob("*.py"):
            assert module.relative_to(REPO).as_posix() in src, f"{module} is not copied"
    # Package data is globs, some through a link (reconciler/examples -> ../examples, which
    # COPY keeps as a link): each file they take is copied where the link leads.
    for package, data in PYPROJECT["tool"]["setuptools"].get("package-data", {}).items():
        for name in data:
            matches = list((REPO / package.replace(".", "/")).glob(name))
            assert matches, f"package data {package}/{name} matches no file"
            for match in matches:
                real = match.resolve().relative_to(REPO).as_posix()
                assert real in src, f"package data {match.relative_to(REPO)} is not copied"
    assert not any("__pycache__" in p or p.startswith("tests/") for p in src)


def test_the_documented_build_tags_the_image_the_chart_pulls() -> None:
    """The README and the Dockerfile's header build and push the image with the tag the
    chart pulls by default (its appVersion), under the repository the README installs with:
    an image tagged otherwise (`latest`) is not found, and the pods stay in ImagePullBackOff."""
    chart = yaml.safe_load((REPO / "charts" / "reconciler" / "Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts" / "reconciler" / "values.yaml").read_text())
    assert values["image"]["tag"] == "", "the chart's default tag is its appVersion"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    header = "\n".join(line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
                       if line.startswith("#"))
    ref = r"(<[^>]*>\S*|\S+)"  # `<your registry>/reconciler:0.1.0` holds a space
    [installed] = re.findall(r"--set image\.repository=" + ref, readme)
    for where, text in (("README.md", readme), ("Dockerfile", header)):
        built = re.findall(r"docker build\b[^\n]*?\s-t\s+" + ref, text)
        pushed = re.findall(r"docker push\s+" + ref, text)
        assert built and pushed, f"{where}: no docker build -t / docker push"
        assert set(built + pushed) == {f"{installed}:{chart['appVersion']}"}, where
