"""Building blocks shared by every resource kind: the strict base model, metadata,
constrained name types and the document envelope (`apiVersion`, `kind`, `metadata`).

Field names in YAML are camelCase (the Kubernetes convention); Python attributes are
snake_case. Unknown keys are rejected everywhere so that a typo never passes silently.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from reconciler.printable import echo

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
# Every dot-separated label starts and ends with a letter or digit (no `a..b`, no `a.-b`).
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
RESOURCE_NAME_PATTERN = rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$"
ResourceName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=RESOURCE_NAME_PATTERN),
    Field(
        description="Name of a resource: lowercase letters, digits, '-' and '.', at most 253 "
        "characters; each part between dots starts and ends with a letter or digit "
        "(Kubernetes object name rules).",
        examples=["home-solna"],
    ),
]
# A namespace is an RFC 1123 label: no dots.
NAMESPACE_PATTERN = rf"^{_DNS_LABEL}$"

# Label and annotation keys: an optional DNS-subdomain prefix and '/', then a name of at most
# 63 characters. Label values follow the rules of the name part, or are empty.
LABEL_NAME_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_KEY_PATTERN = rf"^({RESOURCE_NAME_PATTERN[1:-1]}/)?{LABEL_NAME_PATTERN[1:-1]}$"
_NAME_RULE = (
    "at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
)
_KEY_RULE = (
    f"a name of {_NAME_RULE}, optionally after a DNS-subdomain prefix and '/' (such as "
    "'example.com/tier')"
)


def is_valid_resource_name(value: str) -> bool:
    return len(value) <= 253 and re.fullmatch(RESOURCE_NAME_PATTERN, value) is not None


def _metadata_key(value: str) -> str:
    """A label or annotation key as Kubernetes accepts it (`kubectl apply` refuses others)."""
    prefix, slash, name = value.rpartition("/")
    valid = (
        re.fullmatch(LABEL_NAME_PATTERN, name) is not None
        and len(name) <= 63
        and (not slash or (len(prefix) <= 253 and re.fullmatch(RESOURCE_NAME_PATTERN, prefix)))
    )
    if not valid:
        raise ValueError(f"invalid key {echo(value)}: expected {_KEY_RULE}")
    return value


def _label_value(value: str) -> str:
    if value and (len(value) > 63 or re.fullmatch(LABEL_NAME_PATTERN, value) is None):
        raise ValueError(f"invalid label value {echo(value)}: expected {_NAME_RULE}, or ''")
    return value


def _no_surrounding_space(value: str) -> str:
    if value != value.strip():
        raise ValueError(
            f"{echo(value)} has spaces (or other white space) at its start or end; an identifier "
            "is matched exactly, so remove them"
        )
    return value


def _not_blank(value: str) -> str:
    if value and not value.strip():
        raise ValueError("must not be blank: write the name to show")
    return value


# An id matched against what a cloud or a device reports: " A22" would never match "A22",
# and "" matches nothing (an empty `siteId` would block the Site as naming no site; an
# empty `customerId` would be sent to Flatpeak as one): leave an optional id out instead.
Identifier = Annotated[str, StringConstraints(min_length=1), AfterValidator(_no_surrounding_space)]
# A name shown to people: it may hold spaces, but not only spaces.
DisplayText = Annotated[str, AfterValidator(_not_blank)]

MetadataKey = Annotated[str, AfterValidator(_metadata_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]


class Metadata(StrictModel):
    """Identity of a resource: its name plus optional namespace, labels and annotations."""

    name: ResourceName
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=NAMESPACE_PATTERN,
        description="Kubernetes namespace: lowercase letters, digits and '-', at most 63 "
        "characters, starting and ending with a letter or digit. Ignored by the CLI; used by "
        "the operator.",
        examples=["fleet-north"],
    )
    labels: dict[MetadataKey, LabelValue] = Field(
        default_factory=dict,
        description="Labels for selection with --target/--exclude and operator sharding. "
        f"Keys: {_KEY_RULE}; values: {_NAME_RULE}, or empty.",
        examples=[{"region": "north", "customer": "acme"}],
    )
    annotations: dict[MetadataKey, str] = Field(
        default_factory=dict,
        description="Free-form annotations. `energy.reconciler.dev/paused: \"true\"` pauses "
        f"reconciliation of the object in the operator. Keys: {_KEY_RULE}.",
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
