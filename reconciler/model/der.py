"""DERs (distributed energy resources a device provides): the inline form inside a Device
and the stand-alone `DER` kind for users who keep DERs in files of their own."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from reconciler.model.base import Resource, ResourceName, StrictModel
from reconciler.model.vocab import DER_NAME_PATTERN, DerType

# DERs a device may provide, inline and in DER documents together.
MAX_DERS_PER_DEVICE = 16

DerName = Annotated[
    str,
    StringConstraints(pattern=DER_NAME_PATTERN, max_length=64),
    Field(
        description="DER name: letters, digits, '-' and '_', at most 64 characters, "
        "unique within its device.",
        examples=["pv-array"],
    ),
]


class DerFields(StrictModel):
    """What a DER declares, inline or stand-alone."""

    name: DerName
    type: DerType = Field(
        description="Cloud DER type. Which types a device may have depends on its deviceType.",
        examples=["solar"],
    )
    publish: bool = Field(
        strict=True,
        default=True,
        description="Publish this DER's telemetry from the gateway (the Zap's per-DER "
        "`enabled` flag).",
        examples=[True],
    )


class DerSpec(DerFields):
    """Desired state of a stand-alone DER."""

    device_ref: ResourceName = Field(description="Name of the Device that provides this DER.")


class DER(Resource):
    """A DER declared in its own document."""

    KIND = "DER"
    kind: Literal["DER"] = Field(description="Always `DER`.", examples=["DER"])
    spec: DerSpec = Field(description="Desired state of the DER.")
