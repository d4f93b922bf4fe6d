"""Building blocks shared by every resource kind: the strict base model, metadata,
constrained name types and the document envelope (`apiVersion`, `kind`, `metadata`).

Field names in YAML are camelCase (the Kubernetes convention); Python attributes are
snake_case. Unknown keys are rejected everywhere so that a typo never passes silently.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

API_GROUP = "energy.reconciler.dev"
API_VERSION_NAME = "v1alpha1"
API_VERSION = f"{API_GROUP}/{API_VERSION_NAME}"


class StrictModel(BaseModel):
    """Frozen, camelCase-aliased model that rejects unknown keys."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=False,
        use_enum_values=True,
    )


# Kubernetes object names (RFC 1123 subdomain): what `kubectl apply` accepts for metadata.name.
RESOURCE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
ResourceName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=RESOURCE_NAME_PATTERN),
    Field(
        description="Name of a resource: lowercase letters, digits, '-' and '.', "
        "starting and ending with a letter or digit (Kubernetes object name rules).",
        examples=["home-solna"],
    ),
]

LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


def is_valid_resource_name(value: str) -> bool:
    return len(value) <= 253 and re.fullmatch(RESOURCE_NAME_PATTERN, value) is not None


class Metadata(StrictModel):
    """Identity of a resource: its name plus optional namespace, labels and annotations."""

    name: ResourceName
    namespace: str | None = Field(
        default=None,
        description="Kubernetes namespace. Ignored by the CLI; used by the operator.",
        examples=["fleet-north"],
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels for selection with --target/--exclude and operator sharding.",
        examples=[{"region": "north", "customer": "acme"}],
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form annotations. `energy.reconciler.dev/paused: \"true\"` pauses "
        "reconciliation of the object in the operator.",
        examples=[{"owner": "ops@example.com"}],
    )


class Resource(StrictModel):
    """Envelope common to all kinds. Subclasses set `KIND` and declare `spec`."""

    KIND: ClassVar[str] = ""

    api_version: str = Field(
        alias="apiVersion",
        description=f"Always `{API_VERSION}`.",
        examples=[API_VERSION],
        pattern=f"^{re.escape(API_VERSION)}$",
    )
    kind: str = Field(description="The resource kind.", examples=["Site"])
    metadata: Metadata = Field(description="Name, labels and annotations of the resource.")
    spec: Any

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def address(self) -> str:
        """Stable address used in plans and messages: `<kind>/<name>` in lowercase kind."""
        return f"{self.KIND.lower()}/{self.metadata.name}"
