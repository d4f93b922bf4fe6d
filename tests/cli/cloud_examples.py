"""The documents of the Enapter and Flatpeak examples (`examples/sites/h2-lab-enapter`,
`townhouse-malmo-flatpeak.yaml`), for tests that run the CLI against their simulators."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import Doc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sites"


class _Loader(yaml.SafeLoader):
    """YAML as the reconciler reads it: a date stays the text it is written as."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def cloud_examples() -> list[Doc]:
    docs: list[Doc] = []
    for path in (*sorted((EXAMPLES / "h2-lab-enapter").glob("*.yaml")),
                 EXAMPLES / "townhouse-malmo-flatpeak.yaml"):
        docs += [doc for doc in yaml.load_all(path.read_text(), Loader=_Loader) if doc]
    return docs
