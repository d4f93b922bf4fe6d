"""The generated schemas (`reconciler schema`, `reconciler crds`, `reconciler.model.schema`):
the committed files are current, the CRDs are structural, every example validates against
the JSON Schema and against its kind's CRD, the JSON Schema rejects the schema-level invalid
cases, and the CEL rules that repeat the exactly-one rules are present (and, when a CEL
evaluator is installed, hold on the examples and fail on broken objects)."""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from reconciler.cli import main as cli
from reconciler.cli import schema_cmd
from reconciler.model import base, der, device, gateway, schema, site
from reconciler.sources.yaml_documents import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "reconciler.schema.json"
CRD_DIR = ROOT / "crds"
EXAMPLE_FILES = sorted((ROOT / "examples" / "sites").rglob("*.yaml"))
INVALID_FILES = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
KIND_TO_CRD = {kind: f"{names['plural']}.{base.API_GROUP}.yaml"
               for kind, names in schema.CRD_NAMES.items()}


def documents_of(path: Path) -> list[Any]:
    """The documents of a file as the loader sees them (dates stay strings)."""
    documents, problems = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    assert problems == [], [str(p) for p in problems]
    return [d.value for d in documents]


EXAMPLE_DOCUMENTS = [
    pytest.param(document, id=f"{path.relative_to(ROOT / 'examples' / 'sites')}#{i}")
    for path in EXAMPLE_FILES for i, document in enumerate(documents_of(path))
]


@functools.cache
def committed_crds() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return {p.name: yaml.load(p.read_text(encoding="utf-8"), Loader=loader)
            for p in sorted(CRD_DIR.glob("*.yaml"))}


@functools.cache
def json_schema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft202012Validator:
    converted = openapi_to_json_schema(crd_schema(kind))
    jsonschema.Draft202012Validator.check_schema(converted)
    return jsonschema.Draft202012Validator(converted)


def crd_schema(kind: str) -> dict[str, Any]:
    crd = committed_crds()[KIND_TO_CRD[kind]]
    (version,) = crd["spec"]["versions"]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


# -- the committed files are current


def test_committed_json_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_cmd.schema_text(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} is stale; regenerate it with: "
        "reconciler schema --out schema/reconciler.schema.json")


def test_committed_crds_are_up_to_date() -> None:
    expected = schema_cmd.crd_texts()
    committed = {p.name: p.read_text(encoding="utf-8") for p in CRD_DIR.glob("*.yaml")}
    stale = sorted(name for name in expected if committed.get(name) != expected[name])
    extra = sorted(set(committed) - set(expected))
    assert not stale and not extra, (
        f"crds/ is stale (changed: {stale}, not generated: {extra}); regenerate with: "
        "reconciler crds --out crds")


def test_check_flags_report_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`schema --out` and `crds --out` say what they wrote, `--check` of either says nothing
    of a current file, and names each stale or missing one with the command to run."""
    out = tmp_path / "schema.json"
    capsys.readouterr()
    assert cli.main(["schema", "--out", str(out)]) == 0
    assert capsys.readouterr() == (f"wrote {out}\n", "")
    assert cli.main(["schema", "--out", str(out), "--check"]) == 0
    assert capsys.readouterr() == ("", "")
    out.write_text(out.read_text(encoding="utf-8").replace('"Site"', '"Sight"', 1),
                   encoding="utf-8")
    assert cli.main(["schema", "--out", str(out), "--check"]) == 1
    assert capsys.readouterr() == (
        "", f"{out} is stale; regenerate with: reconciler schema --out {out}\n")
    missing = tmp_path / "none.json"
    assert cli.main(["schema", "--out", str(missing), "--check"]) == 1
    assert capsys.readouterr() == (
        "", f"{missing} is missing; regenerate with: reconciler schema --out {missing}\n")

    crds = tmp_path / "crds"
    assert cli.main(["crds", "--out", str(crds)]) == 0
    assert capsys.readouterr() == (
        "".join(f"wrote {crds / name}\n" for name in schema_cmd.crd_texts()), "")
    assert cli.main(["crds", "--out", str(crds), "--check"]) == 0
    assert capsys.readouterr() == ("", "")
    (crds / KIND_TO_CRD["DER"]).unlink()
    (crds / KIND_TO_CRD["Site"]).write_text("# edited\n", encoding="utf-8")
    assert cli.main(["crds", "--out", str(crds), "--check"]) == 1
    assert capsys.readouterr() == ("", (
        f"{crds / KIND_TO_CRD['Site']} is stale; regenerate with: reconciler crds --out {crds}\n"
        f"{crds / KIND_TO_CRD['DER']} is missing; regenerate with: reconciler crds --out {crds}\n"))


def test_schema_out_naming_a_directory_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--out schema/` is a directory, not a file named `schema` to write the schema into."""
    assert cli.main(["schema", "--out", f"{tmp_path}/schema/"]) == 1
    assert capsys.readouterr() == ("", (
        f"error: cannot write {tmp_path}/schema/: it is a directory; --out names the schema "
        "file (FILE), such as schema/reconciler.schema.json\n"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("named", ["site-file", "invalid-site-file", "state-file",
                                   "state-file-of-the-setting", "state-file-of-the-settings-file"])
def test_schema_out_over_a_site_file_or_a_state_file_is_refused_and_left_as_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        named: str) -> None:
    """The schema is written whole over the name: a site file's YAML, or the memory of
    earlier applies, would be lost to a slip of `--out`. No desired state is given to
    `schema`: a site file is known by the documents it declares."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_STATE_DIR", raising=False)
    site_file = tmp_path / "sites" / "home.yaml"
    site_file.parent.mkdir()
    site_file.write_text((ROOT / "examples" / "sites" / "villa-lund-v2x.yaml").read_text())
    # Half edited: still the user's Site.
    (tmp_path / "sites" / "draft.yaml").write_text(
        f"apiVersion: {base.API_VERSION}\nkind: Site\nmetadata: {{name: draft}}\n"
        "spec: {timezone: Nowhere}\n")
    for directory in (".reconciler", "kept"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "inventory.json").write_text("{}\n")
    if named == "state-file-of-the-setting":
        monkeypatch.setenv("RECONCILER_STATE_DIR", "kept")
    if named == "state-file-of-the-settings-file":  # as `plan` would take it
        (tmp_path / "reconciler.toml").write_text('state_dir = "kept"\n')
        monkeypatch.setenv("RECONCILER_CONFIG", "reconciler.toml")
    out, why = {
        "site-file": ("sites/home.yaml", "it is a file of the desired state (sites/home.yaml), "
                      "which the schema would replace"),
        "invalid-site-file": ("sites/draft.yaml", "it is a file of the desired state "
                              "(sites/draft.yaml), which the schema would replace"),
        "state-file": (".reconciler/inventory.json", "it is the state directory's "
                       "inventory.json, which holds what earlier applies did and would be "
                       "replaced by the schema"),
        "state-file-of-the-setting": ("kept/inventory.json", "it is the state directory's "
                                      "inventory.json, which holds what earlier applies did "
                                      "and would be replaced by the schema"),
        "state-file-of-the-settings-file": (
            "kept/inventory.json", "it is the state directory's inventory.json, which holds "
            "what earlier applies did and would be replaced by the schema"),
    }[named]
    before = (tmp_path / out).read_bytes()
    assert cli.main(["schema", "--out", out]) == 1
    assert capsys.readouterr() == ("", (
        f"error: --out: cannot write {out}: {why}; name a file of its own "
        "(--out schema/reconciler.schema.json)\ninvalid arguments: 1 problem\n"))
    assert (tmp_path / out).read_bytes() == before


def test_schema_out_may_replace_a_yaml_file_that_declares_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only a file of the desired state is refused: another, or one named like a state
    file outside the state directory, is the user's to replace."""
    for name in ("notes.yaml", "inventory.json"):
        (tmp_path / name).write_text("just: notes\n")
        assert cli.main(["schema", "--out", str(tmp_path / name)]) == 0
        assert json.loads((tmp_path / name).read_text()) == schema.json_schema()
    capsys.readouterr()


@pytest.mark.parametrize(("out", "folder", "site_file"), [
    ("sites/new.yaml", "sites", "sites/lund.yaml"),
    ("sites/home/schema.YML", "sites/home", "sites/home/home.yaml"),
    ("sites/new-site/schema.yaml", "sites", "sites/lund.yaml"),
    ("sites/home/notes/schema.yaml", "sites/home", "sites/home/home.yaml")])
def test_schema_out_as_a_yaml_name_in_a_folder_of_site_files_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        out: str, folder: str, site_file: str) -> None:
    """A new file there or below (in a new directory, or in one of no site files of its
    own), is read by the next `validate` or `plan` of the folder as a site document, which
    the schema (JSON) is not: refused, saying why, and nothing is written; the fleet still
    validates. `schema` is given no desired state: the folder is known by the site files
    it holds itself (here also in a directory of their own, as examples/sites/home-solna/
    holds them)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sites" / "home" / "notes").mkdir(parents=True)
    for kept, example in (("sites/lund.yaml", "villa-lund-v2x.yaml"),
                          ("sites/home/home.yaml", "townhouse-malmo-flatpeak.yaml")):
        (tmp_path / kept).write_text((ROOT / "examples" / "sites" / example).read_text())
    assert cli.main(["schema", "--out", out]) == 1
    assert capsys.readouterr() == ("", (
        f"error: --out: cannot write {out}: {folder} holds site files ({site_file}), and "
        "`reconciler validate` or `plan` of it would read a file named *.yaml or *.yml there "
        "as one, which the schema (JSON) is not; name a file of its own "
        "(--out schema/reconciler.schema.json)\ninvalid arguments: 1 problem\n"))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "sites", "sites/home", "sites/home/home.yaml", "sites/home/notes", "sites/lund.yaml"]
    assert cli.main(["validate", "sites"]) == 0


def test_crds_out_in_a_folder_of_site_files_is_refused_and_beside_one_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CRDs are YAML of a kind the loader does not read: written into a folder of site
    files (or a new one below it), the next `validate` or `plan` of it fails on each.
    Refused before any is written; a new folder beside the site files' (`deploy/crds`
    beside `deploy/sites`) is the user's to fill."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy" / "sites").mkdir(parents=True)
    (tmp_path / "deploy" / "sites" / "lund.yaml").write_text(
        (ROOT / "examples" / "sites" / "villa-lund-v2x.yaml").read_text())
    first = next(iter(schema_cmd.crd_texts()))
    for out in ("deploy/sites", "deploy/sites/crds"):
        assert cli.main(["crds", "--out", out]) == 1
        assert capsys.readouterr() == ("", (
            f"error: --out: cannot write {out}/{first}: deploy/sites holds site files "
            "(deploy/sites/lund.yaml), and `reconciler validate` or `plan` of it would read a "
            "file named *.yaml or *.yml there as one, which a CRD (of another kind) is not; "
            "name a directory of its own (--out crds)\ninvalid arguments: 1 problem\n"))
    assert sorted(p.name for p in (tmp_path / "deploy" / "sites").iterdir()) == ["lund.yaml"]
    assert cli.main(["validate", "deploy/sites"]) == 0
    assert cli.main(["crds", "--out", "deploy/crds"]) == 0
    assert sorted(p.name for p in (tmp_path / "deploy" / "crds").iterdir()) == sorted(
        schema_cmd.crd_texts())
    capsys.readouterr()


@pytest.mark.parametrize("out", ["sites/.schema.yaml", "sites/schema.json", "notes/x.yaml"])
def test_schema_out_in_a_folder_of_site_files_the_loader_skips_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        out: str) -> None:
    """A hidden name or another suffix the loader does not read there, and a YAML name in
    a folder of no site files, are the user's to choose."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "home.yaml").write_text(
        (ROOT / "examples" / "sites" / "villa-lund-v2x.yaml").read_text())
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.yaml").write_text("just: notes\n")
    assert cli.main(["schema", "--out", out]) == 0
    assert json.loads((tmp_path / out).read_text()) == schema.json_schema()
    assert cli.main(["validate", "sites"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("target", [".reconciler/inventory.json", "sites/new.yaml"])
def test_schema_out_naming_a_link_is_refused_by_what_it_links_to(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        target: str) -> None:
    """The schema is written through a symbolic link: a link to the state directory's
    inventory would replace the memory of earlier applies, one to a new YAML name in a
    folder of site files would add a document that is none. Refused, naming the target;
    the link and what it links to are left as they are."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_STATE_DIR", raising=False)
    (tmp_path / ".reconciler").mkdir()
    (tmp_path / ".reconciler" / "inventory.json").write_text("{}\n")
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "home.yaml").write_text(
        (ROOT / "examples" / "sites" / "villa-lund-v2x.yaml").read_text())
    (tmp_path / "schema.json").symlink_to(target)
    why = {
        ".reconciler/inventory.json": "it is the state directory's inventory.json, which holds "
                                      "what earlier applies did and would be replaced by the "
                                      "schema",
        "sites/new.yaml": f"{tmp_path}/sites holds site files ({tmp_path}/sites/home.yaml), and "
                          "`reconciler validate` or `plan` of it would read a file named *.yaml "
                          "or *.yml there as one, which the schema (JSON) is not",
    }[target]
    assert cli.main(["schema", "--out", "schema.json"]) == 1
    assert capsys.readouterr() == ("", (
        f"error: --out: cannot write schema.json: it is a symbolic link to {tmp_path}/{target}: "
        f"{why}; name a file of its own (--out schema/reconciler.schema.json)\n"
        "invalid arguments: 1 problem\n"))
    assert (tmp_path / ".reconciler" / "inventory.json").read_text() == "{}\n"
    assert not (tmp_path / "sites" / "new.yaml").exists()
    assert (tmp_path / "schema.json").is_symlink()


def test_schema_out_naming_a_link_to_a_file_of_its_own_writes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A link to where the schema is kept (`schema.json -> schema/reconciler.schema.json`)
    is written through, as before."""
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema.json").symlink_to("schema/reconciler.schema.json")
    assert cli.main(["schema", "--out", str(tmp_path / "schema.json")]) == 0
    assert json.loads((tmp_path / "schema" / "reconciler.schema.json").read_text()) == \
        schema.json_schema()
    assert (tmp_path / "schema.json").is_symlink()
    capsys.readouterr()


@pytest.mark.parametrize("into", ["pipe", "file"])
def test_schema_out_naming_standard_output_carries_the_schema_alone(
        tmp_path: Path, into: str) -> None:
    """`--out /dev/stdout` is the schema on standard output, as without --out: no `wrote`
    line after it in a pipe, nor over its start in a file a shell's `>` opened."""
    command = [sys.executable, "-m", "reconciler", "schema", "--out", "/dev/stdout"]
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if into == "pipe":
        done = subprocess.run(command, capture_output=True, text=True, env=environment,
                              timeout=60, check=False)
        shown = done.stdout
    else:
        with (tmp_path / "schema.json").open("w") as file:
            done = subprocess.run(command, stdout=file, stderr=subprocess.PIPE, text=True,
                                  env=environment, timeout=60, check=False)
        shown = (tmp_path / "schema.json").read_text()
    assert (done.returncode, done.stderr) == (0, "")
    assert shown == schema_cmd.schema_text()


def test_check_reads_no_further_than_the_generated_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file far larger than the schema (1 GiB, sparse) is stale without being read whole,
    in a process that may take 512 MiB of memory; one that is not UTF-8 is stale too, not
    an error."""
    out = tmp_path / "schema.json"
    with out.open("wb") as file:
        file.truncate(2**30)
    limit = 512 * 2**20
    program = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_DATA, ({limit}, "
               f"{limit})); from reconciler.cli import main; sys.exit(main.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", program, "schema", "--out", str(out), "--check"],
                          capture_output=True, text=True, timeout=120, check=False)
    stale = f"{out} is stale; regenerate with: reconciler schema --out {out}\n"
    assert (done.returncode, done.stderr) == (1, stale)

    out.write_bytes(b"\xff" + schema_cmd.schema_text().encode()[1:])
    assert cli.main(["schema", "--out", str(out), "--check"]) == 1
    assert capsys.readouterr().err == stale


def test_schema_check_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema", "--check"]) == 1
    assert "--check needs --out FILE" in capsys.readouterr().err


def test_schema_without_out_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    assert capsys.readouterr().out == schema_cmd.schema_text()


# -- structure


def test_json_schema_is_a_valid_draft_2020_12_schema() -> None:
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", sorted(KIND_TO_CRD.values()))
def test_crd_schemas_are_structural(name: str) -> None:
    crd = committed_crds()[name]
    (version,) = crd["spec"]["versions"]
    problems = schema.structural_problems(version["schema"]["openAPIV3Schema"])
    assert problems == [], f"{name} is not structural:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
                     ["/a: `$ref` is not allowed in a structural schema",
                      "/a: missing or invalid `type`"], id="ref"),
        pytest.param({"type": "object", "properties": {
            "a": {"type": "string", "anyOf": [{"type": "string"}, {"type": "null"}]}}},
            ["/a: `anyOf` is not allowed in a structural schema"], id="any-of"),
        pytest.param({"type": "object", "additionalProperties": False},
                     ["/: `additionalProperties: false` is not allowed"], id="additional-false"),
        pytest.param({"type": "object", "properties": {"a": {"type": "string"}},
                      "additionalProperties": {"type": "string"}},
                     ["/: `properties` and `additionalProperties` are exclusive"],
                     id="properties-and-additional"),
        pytest.param({"type": "array", "items": {"description": "untyped"}},
                     ["/items: missing or invalid `type`"], id="untyped-items"),
        pytest.param({"type": "object", "properties": {"s": {"x-kubernetes-preserve-unknown-fields":
                                                             True}}}, [], id="preserve-unknown"),
        pytest.param({"type": "object", "properties": {"metadata": {}}}, [], id="root-metadata"),
    ],
)
def test_structural_problems_finds_what_kubernetes_refuses(
    node: dict[str, Any], expected: list[str]
) -> None:
    assert schema.structural_problems(node) == expected


def test_crds_name_the_kinds_and_have_a_status_subresource() -> None:
    for kind, name in KIND_TO_CRD.items():
        crd = committed_crds()[name]
        assert crd["metadata"]["name"] == name.removesuffix(".yaml")
        assert crd["spec"]["names"]["kind"] == kind
        (version,) = crd["spec"]["versions"]
        assert version["name"] == base.API_VERSION_NAME and version["storage"] is True
        assert version["subresources"] == {"status": {}}


# -- examples against the schemas


def test_every_example_file_has_the_schema_modeline() -> None:
    for path in EXAMPLE_FILES:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert match, f"{path}: first line is not a yaml-language-server modeline: {first!r}"
        assert (path.parent / match[1]).resolve() == SCHEMA_FILE, f"{path}: {match[1]}"


@pytest.mark.parametrize("document", EXAMPLE_DOCUMENTS)
def test_examples_validate_against_the_json_schema(document: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in json_schema_validator().iter_errors(document)]
    assert errors == []


def openapi_to_json_schema(node: Any) -> Any:
    """The OpenAPI v3 subset of a CRD as JSON Schema: drop `x-kubernetes-*` and `example`,
    and turn the boolean `exclusiveMaximum/Minimum` of OpenAPI 3.0 into numbers."""
    if isinstance(node, list):
        return [openapi_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_json_schema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k != "example"}
    for bound, exclusive in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
        if out.get(exclusive) is True:
            out[exclusive] = out.pop(bound)
        elif out.get(exclusive) is False:
            del out[exclusive]
    return out


def test_openapi_conversion_of_exclusive_bounds() -> None:
    converted = openapi_to_json_schema({"type": "number", "minimum": 0, "exclusiveMinimum": True,
                                        "maximum": 360, "exclusiveMaximum": True,
                                        "example": 5, "x-kubernetes-validations": []})
    assert converted == {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 360}
    validator = jsonschema.Draft202012Validator(converted)
    assert [validator.is_valid(v) for v in (0, 0.1, 359.9, 360)] == [False, True, True, False]


@pytest.mark.parametrize("document", EXAMPLE_DOCUMENTS)
def test_examples_validate_against_their_crd(document: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in crd_validator(document["kind"]).iter_errors(document)]
    assert errors == []


def schema_expectation(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            return None
        if line.startswith("# jsonschema: "):
            return line.removeprefix("# jsonschema: ").strip()
    return None


SCHEMA_CASES = [pytest.param(p, schema_expectation(p), id=p.stem) for p in INVALID_FILES
                if schema_expectation(p) is not None]


def test_enough_invalid_cases_are_schema_level() -> None:
    rejected = [p for p in SCHEMA_CASES if p.values[1] == "reject"]
    assert len(rejected) >= 10


@pytest.mark.parametrize(("path", "expectation"), SCHEMA_CASES)
def test_json_schema_on_invalid_cases(path: Path, expectation: str) -> None:
    """`reject`: the editor already flags it; `accept`: only the loader's cross-document
    rules catch it, and the schema must not refuse the valid parts."""
    validator = json_schema_validator()
    documents = documents_of(path)
    rejected = [d for d in documents if not validator.is_valid(d)]
    assert expectation in ("reject", "accept"), expectation
    if expectation == "reject":
        assert rejected, f"{path.name}: the JSON Schema accepts every document"
    else:
        assert rejected == [], f"{path.name}: the JSON Schema rejects {rejected}"


def _gateway(url: str) -> dict[str, Any]:
    return {"apiVersion": base.API_VERSION, "kind": "Gateway", "metadata": {"name": "zap"},
            "spec": {"siteRef": "home", "zap": {"serial": "zap-0123456789abcdef", "url": url}}}


@pytest.mark.parametrize(("url", "valid"), [
    pytest.param("http://192.168.1.40", True, id="plain"),
    pytest.param("https://zap.local:8443/api-base/", True, id="path"),
    pytest.param("http://192.168.1.40/?token=x", False, id="query"),
    pytest.param("http://192.168.1.41#zap", False, id="fragment"),
    pytest.param("http://zap.local/base?", False, id="empty-query"),
    # A password may hold a '?' or '#': the API server's refusal would print it whole, so
    # the loader and the operator refuse it instead, masking it.
    pytest.param("http://admin:pa?ss#1@192.168.1.40/", True, id="credentials-left-to-loader"),
])
def test_gateway_url_query_is_refused_by_the_schemas(url: str, valid: bool) -> None:
    """The API server refuses a Zap URL with a query or fragment at `kubectl apply`, as the
    loader does, and an editor flags it."""
    document = _gateway(url)
    assert crd_validator("Gateway").is_valid(document) is valid
    assert json_schema_validator().is_valid(document) is valid


# -- CEL rules (x-kubernetes-validations)


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")


def rules_at(kind: str, path: str) -> list[str]:
    nodes = dict(walk(crd_schema(kind)))
    return [r["rule"] for r in nodes[path].get("x-kubernetes-validations", [])]


def exactly_one_models() -> list[type[BaseModel]]:
    """Models whose Python validation includes an exactly-one rule."""
    found = []
    for module in (site, gateway, device, der):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseModel) and cls.__module__ == module.__name__:
                validators = cls.__pydantic_decorators__.model_validators
                if any("exactly" in name for name in validators):
                    found.append(cls)
    return found


def test_every_exactly_one_rule_has_a_cel_rule() -> None:
    models = {m.__name__ for m in exactly_one_models()}
    assert models == {"GatewaySpec", "Connection", "SecretSource", "ConfigOutput"}
    assert models <= set(schema.CEL_RULES), sorted(models - set(schema.CEL_RULES))


@pytest.mark.parametrize(
    ("kind", "path", "fields"),
    [
        pytest.param("Gateway", ".spec", ("zap", "enapter"), id="gateway-platform"),
        pytest.param("Device", ".spec.connection", ("modbusTcp", "modbusRtu", "p1Uart", "mqtt"),
                     id="connection"),
        pytest.param("Device", ".spec.connection.mqtt.passwordFrom", ("secretKeyRef", "env"),
                     id="password-from"),
        pytest.param("Device", ".spec.enapter.configOutput", ("file", "secretName"),
                     id="config-output"),
    ],
)
def test_exactly_one_cel_rules_are_in_the_crds(
    kind: str, path: str, fields: tuple[str, ...]
) -> None:
    rules = [r for r in rules_at(kind, path) if ".filter(x, x).size() == 1" in r
             or r.startswith("has(self.")]
    assert len(rules) == 1, rules
    for name in fields:
        assert f"has(self.{name})" in rules[0]


def test_device_spec_cel_rules_are_in_the_crd() -> None:
    rules = rules_at("Device", ".spec")
    assert any("self.ders.all(d, d.type in {'inverter': ['battery', 'meter', 'solar']" in r
               for r in rules), rules
    assert any("exists_one(b, b.name == a.name)" in r for r in rules), rules
    assert "has(self.gatewayRef) || has(self.siteRef)" in rules


@functools.cache
def cel_program(rule: str) -> Any:
    import celpy

    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def cel_failures(crd: dict[str, Any], value: Any) -> list[str]:
    """Evaluate every rule of the CRD schema on the matching parts of `value`."""
    celpy = pytest.importorskip("celpy", reason="install cel-python to evaluate CEL rules")
    failures: list[str] = []

    def visit(node: dict[str, Any], current: Any, path: str) -> None:
        for rule in node.get("x-kubernetes-validations", []):
            program = cel_program(rule["rule"])
            result = program.evaluate({"self": celpy.json_to_cel(current)})
            if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                failures.append(f"{path or '.'}: {rule['message']}")
        if isinstance(current, dict):
            for name, sub in node.get("properties", {}).items():
                if name in current:
                    visit(sub, current[name], f"{path}.{name}")
        elif isinstance(current, list) and isinstance(node.get("items"), dict):
            for i, item in enumerate(current):
                visit(node["items"], item, f"{path}[{i}]")

    visit(crd, value, "")
    return failures


@pytest.mark.parametrize("document", EXAMPLE_DOCUMENTS)
def test_cel_rules_hold_on_the_examples(document: dict[str, Any]) -> None:
    assert cel_failures(crd_schema(document["kind"]), document) == []


def _device(**spec: Any) -> dict[str, Any]:
    base_spec = {"gatewayRef": "home-zap", "hardwareId": "A2231234567", "deviceType": "inverter",
                 "connection": {"modbusTcp": {"host": "192.168.1.60", "profile": "sungrow"}},
                 "ders": [{"name": "pv", "type": "solar"}]}
    return {"apiVersion": base.API_VERSION, "kind": "Device", "metadata": {"name": "inverter"},
            "spec": {k: v for k, v in {**base_spec, **spec}.items() if v is not None}}


_GATEWAY = {"apiVersion": base.API_VERSION, "kind": "Gateway", "metadata": {"name": "home-zap"},
            "spec": {"siteRef": "home", "zap": {"serial": "zap-3c61a4f0b2d8e917",
                                                "url": "http://192.168.1.40"}}}


def _gateway_with(**spec: Any) -> dict[str, Any]:
    gateway_doc = copy.deepcopy(_GATEWAY)
    gateway_doc["spec"].update(spec)
    gateway_doc["spec"] = {k: v for k, v in gateway_doc["spec"].items() if v is not None}
    return gateway_doc


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(_device(), [], id="valid-device"),
        pytest.param(_GATEWAY, [], id="valid-gateway"),
        pytest.param(_device(connection={"modbusTcp": {"host": "h", "profile": "sungrow"},
                                         "mqtt": {"brokerHost": "h", "profile": "ferroamp"}}),
                     [".spec.connection: set exactly one of modbusTcp, modbusRtu, p1Uart or mqtt"],
                     id="two-connections"),
        pytest.param(_device(connection={}),
                     [".spec.connection: set exactly one of modbusTcp, modbusRtu, p1Uart or mqtt"],
                     id="no-connection"),
        pytest.param(_device(connection={"mqtt": {"brokerHost": "h", "profile": "ferroamp",
                                                  "passwordFrom": {}}}),
                     [".spec.connection.mqtt.passwordFrom: set exactly one of secretKeyRef or env"],
                     id="empty-password-from"),
        pytest.param(_device(connection={"mqtt": {"brokerHost": "h", "profile": "ferroamp",
                                                  "passwordFrom": {"env": "FERROAMP_PW"}}}),
                     [], id="password-env-of-its-own"),
        *(pytest.param(_device(connection={"mqtt": {"brokerHost": "h", "profile": "ferroamp",
                                                    "passwordFrom": {"env": name}}}),
                       [".spec.connection.mqtt.passwordFrom: env may not name one of the "
                        "reconciler's own settings (RECONCILER_*, its cloud tokens and keys): "
                        "use a variable of its own or secretKeyRef"], id=f"password-env-{name}")
          for name in ("RECONCILER_NOVACORE_TOKEN", "reconciler_enapter_token")),
        pytest.param(_device(enapter={"kind": "ucm", "configOutput": {"file": "f",
                                                                      "secretName": "s"}}),
                     [".spec.enapter.configOutput: set exactly one of file or secretName"],
                     id="config-output-both"),
        pytest.param(_device(ders=[{"name": "ev", "type": "ev_charger_port"}]),
                     [".spec: a DER type is not allowed for this deviceType (inverter: solar, "
                      "battery, meter; battery: battery, meter; ev_charger and v2x_charger: "
                      "ev_charger_port; energy_meter: meter)"], id="der-type"),
        pytest.param(_device(ders=[{"name": "pv", "type": "solar"},
                                   {"name": "pv", "type": "battery"}]),
                     [".spec: DER names must be unique within a device"], id="der-names"),
        pytest.param(_device(gatewayRef=None), [".spec: set gatewayRef or siteRef"],
                     id="no-gateway-or-site"),
        pytest.param(_gateway_with(zap=None), [".spec: set exactly one of zap or enapter"],
                     id="gateway-no-platform"),
        pytest.param(_gateway_with(enapter={"hardwareId": "B2", "firmwareVersion": "3.2.1"}),
                     [".spec: set exactly one of zap or enapter"], id="gateway-two-platforms"),
    ],
)
def test_cel_rules_refuse_broken_objects(document: dict[str, Any], expected: list[str]) -> None:
    assert cel_failures(crd_schema(document["kind"]), document) == expected
