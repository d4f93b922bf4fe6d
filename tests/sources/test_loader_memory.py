"""What a loaded fleet holds: the equal parts of its resources are one object each
(`model.shared_parts`), so that a large fleet is small enough for a plan to hold it and what
it observed; and each resource still says exactly what its document says."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reconciler.model.kinds import KINDS
from reconciler.sim.generate import write_fleet
from reconciler.sources import loader
from reconciler.sources.yaml_documents import parse_yaml

EXAMPLES = Path(loader.__file__).parent.parent / "examples" / "sites"


def held_bytes(paths: list[Path]) -> tuple[int, int]:
    """(bytes the loaded fleet holds, as tracemalloc counts them; its resources)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fleet = loader.load_fleet(paths)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held, len(fleet)


def test_a_generated_fleet_holds_little_memory_per_resource(tmp_path: Path) -> None:
    files = write_fleet(tmp_path / "sites", 40, 10)
    held, resources = held_bytes(files)
    # 1 Site, 1 Gateway and 10 Devices a site: 4.8 KB a resource when each kept parts of
    # its own (a fresh set and dict per model, the same strings again and again); 2 KB shared.
    assert resources == 40 * 12
    assert held / resources < 3000, f"{held / resources:.0f} bytes a resource"


def fields_of(model: BaseModel) -> Any:
    """Everything a model says: its values, and which fields its document set, all the way
    down (the fields set decides what a plan compares: `model.declared`)."""
    out: dict[str, Any] = {"fields set": sorted(model.model_fields_set)}
    for name, value in model.__dict__.items():
        out[name] = fields_of_value(value)
    return (type(model).__name__, out)


def fields_of_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return fields_of(value)
    if isinstance(value, list):
        return [fields_of_value(item) for item in value]
    if isinstance(value, dict):
        return {key: fields_of_value(item) for key, item in value.items()}
    return (type(value).__name__, repr(value))


def alone(paths: list[Path]) -> list[Any]:
    """Each document of `paths` validated on its own, as nothing shares anything."""
    out = []
    for path in sorted(paths):
        documents, problems = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        assert problems == []
        for document in documents:
            resource, problems = loader.validate_document(document)
            assert problems == [] and resource is not None
            out.append(resource)
    return out


def test_shared_parts_leave_every_resource_as_its_document_declares_it(tmp_path: Path) -> None:
    # The examples declare every kind and platform (floats, enums left to their defaults,
    # labels, secrets); the generated sites repeat themselves.
    paths = sorted(EXAMPLES.rglob("*.yaml")) + write_fleet(tmp_path / "sites", 3, 10)
    loaded = loader.load_paths(paths)
    assert loaded.ok, loaded.diagnostics
    expected = alone(paths)
    assert [fields_of(r) for r in loaded.resources] == [fields_of(r) for r in expected]
    assert [r.model_dump_json() for r in loaded.resources] == [
        r.model_dump_json() for r in expected
    ]
    assert {r.KIND for r in loaded.resources} == set(KINDS)


def test_a_copy_of_a_shared_part_changes_none_of_its_holders(tmp_path: Path) -> None:
    fleet = loader.load_fleet(write_fleet(tmp_path / "sites", 2, 10))
    first, second = fleet.devices["site-00000-dev-02"], fleet.devices["site-00001-dev-02"]
    shared = first.spec.verification
    assert shared is second.spec.verification  # one object for both (what saves memory)
    declared = set(shared.model_fields_set)
    copy = shared.model_copy(update={"check_serial": not shared.check_serial})
    assert copy.check_serial != shared.check_serial
    assert copy.model_fields_set == declared | {"check_serial"}
    assert second.spec.verification.check_serial == shared.check_serial
    assert second.spec.verification.model_fields_set == declared


def test_two_declarations_of_one_name_are_still_two(tmp_path: Path) -> None:
    site = tmp_path / "sites"
    document = write_fleet(site, 1, 0)[0].read_text(encoding="utf-8")
    (site / "again.yaml").write_text(document, encoding="utf-8")
    result = loader.load_paths([site])
    messages = [d.message for d in result.diagnostics]
    assert any("first declared at" in m for m in messages), messages
