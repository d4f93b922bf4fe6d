"""The `status` block the operator writes on every kind: conditions in the Kubernetes
convention (Ready, Synced, Reachable, Verified, Claimed), external ids, a summary of the
last plan. Secrets never appear here."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from reconciler.model.base import StrictModel


class ConditionType(StrEnum):
    READY = "Ready"
    SYNCED = "Synced"
    REACHABLE = "Reachable"
    VERIFIED = "Verified"
    CLAIMED = "Claimed"


class Condition(StrictModel):
    """One observation about the resource."""

    type: str = Field(description="Condition type.", examples=["Ready"])
    status: str = Field(description="True, False or Unknown.", examples=["True"],
                        pattern="^(True|False|Unknown)$")
    reason: str = Field(default="", description="CamelCase reason.", examples=["Reconciled"])
    message: str = Field(default="", description="Human-readable detail.", examples=["in sync"])
    last_transition_time: str | None = Field(
        default=None,
        description="When the status last changed (RFC 3339).",
        examples=["2026-01-01T00:00:00Z"],
    )
    observed_generation: int | None = Field(
        default=None, description="Generation the condition describes.", examples=[3]
    )


class LastPlan(StrictModel):
    """Summary of the last plan computed for the resource."""

    summary: str = Field(default="", description="One-line summary.", examples=["1 to create"])
    changes: int = Field(default=0, description="Number of changes.", examples=[1])
    actions: list[str] = Field(
        default_factory=list,
        description="Changes, one line each.",
        examples=[["+ create device/inv"]],
    )
    time: str | None = Field(
        default=None,
        description="When it was computed (RFC 3339).",
        examples=["2026-01-01T00:00:00Z"],
    )


class ResourceStatus(StrictModel):
    """Status written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="Last generation reconciled.", examples=[3]
    )
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")
    external_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Ids on the external platforms.",
        examples=[{"novacore": "dev-abc123"}],
    )
    last_plan: LastPlan | None = Field(default=None, description="The last plan for this resource.")
