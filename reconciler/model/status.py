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
    notes: list[str] = Field(
        default_factory=list,
        description="What the plan says beyond its changes: spec fields declared when a "
        "reconcile last converged, removed since, and left as they are on their platform "
        "(no longer managed). Said by every plan, in observe mode too, until a reconcile "
        "converges and the record forgets the field.",
        examples=[["spec.manufacturer of Device inv was declared at the last apply and is "
                   "removed from the spec; its value on Novacore is left as it is and no "
                   "longer managed (Novacore refuses an empty value): declare it again to "
                   "manage it"]],
    )
    time: str | None = Field(
        default=None,
        description="When it was computed (RFC 3339).",
        examples=["2026-01-01T00:00:00Z"],
    )


class AppliedSecrets(StrictModel):
    """Which MQTT password a Device was last given, as a keyed fingerprint (HMAC-SHA256
    under the operator's credential key): never the password, and without the key not even
    testable against a guess. A change of the password in its Secret is seen by comparing."""

    key_id: str = Field(description="Names the key the fingerprint was made with.",
                        examples=["3f1c9a0b5e7d2c44"])
    mqtt_password_fingerprint: str = Field(
        description="HMAC-SHA256 of the MQTT password, hex.",
        examples=["9b74c9897bac770ffc029102a200c5de"],
    )
    revision: int = Field(
        default=0,
        ge=0,
        description="Counts the changes of this block: of two copies of it (the status as "
        "the operator's watch last saw it, and what its own last reconcile wrote), the "
        "higher revision is the newer.",
        examples=[2],
    )


class DeviceGateway(StrictModel):
    """The gateway a Device was last found on or added to: what `deletionPolicy: Release`
    removes it from, even once the Gateway object is deleted (its spec is gone with it)."""

    name: str = Field(description="The Gateway object.", examples=["home-solna"])
    serial: str = Field(description="The Zap's serial.", examples=["zap-0123456789abcdef"])
    url: str = Field(description="The Zap's declared URL.", examples=["http://192.168.1.40"])
    site: str = Field(description="The gateway's Site object.", examples=["home-solna"])
    endpoint: str | None = Field(
        default=None,
        description="The connection endpoint the device has there, as the Zap tells its "
        "devices apart: of two Devices of the namespace declaring one endpoint, the one "
        "that has it keeps it and the other is refused, however old.",
        examples=["Modbus TCP 192.168.1.60:502 unit id 1"],
    )


class ClaimedGateway(StrictModel):
    """A gateway a Gateway object claimed (or found claimed) in Novacore: what the CLI's
    inventory remembers of it. A serial swapped out of the spec is released from here,
    with `deletionPolicy: Release`, once its devices moved off it."""

    serial: str = Field(description="The Zap's serial.", examples=["zap-0123456789abcdef"])
    org_id: str = Field(description="The organisation it was claimed into.",
                        examples=["org-home"])
    deletion_policy: str = Field(
        description="The deletionPolicy declared with this serial.", examples=["Release"]
    )


class FlatpeakLocation(StrictModel):
    """A Flatpeak location a Device's Site was found at or given: what the CLI's inventory
    remembers of the locations this fleet made or matched. A device leaves it once its
    Site's location is another (the Site renamed, or given another `locationId`), as it
    leaves another Site's; a location no Site of the fleet had is kept."""

    id: str = Field(description="The Flatpeak location id.", examples=["loc_8a1f2c"])
    site: str = Field(description="The Site object it was the location of.",
                      examples=["home-solna"])
    account_sha256: str | None = Field(
        default=None,
        description="The SHA-256 fingerprint of the Flatpeak account "
        "(RECONCILER_FLATPEAK_ACCOUNT_ID) it was found in; an operator with another "
        "account neither looks for it nor forgets it. None recorded: looked for in any.",
        examples=["5f2b7c9e0d4a1b3c6e8f0a2d4c6b8e0f1a3c5e7d9b1f3a5c7e9d1b3f5a7c9e1d"],
    )


class UnmanagedObject(StrictModel):
    """An object found that nothing declares, as the CLI's plan document lists it."""

    platform: str = Field(
        description="Where it was found: zap, novacore, enapter, flatpeak.", examples=["zap"]
    )
    id: str = Field(
        description="Its id there (a Zap device's sn, a Novacore, Enapter or Flatpeak id).",
        examples=["SG0001"],
    )
    description: str = Field(
        description="What it is, and why it is not this fleet's.",
        examples=["inverter SG0001 on gateway home-zap is declared on gateway cabin-zap "
                  "(Device inv), not here"],
    )


class UnmanagedObjects(StrictModel):
    """The objects found under this object that nothing declares: left as they are (the
    operator removes nothing it does not declare), and said here until they go."""

    count: int = Field(default=0, description="How many were found.", examples=[1])
    objects: list[UnmanagedObject] = Field(
        default_factory=list, description="The first 20 of them, in the plan's order."
    )


class ResourceStatus(StrictModel):
    """Status written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="Last generation reconciled.", examples=[3]
    )
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")
    external_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Ids on the external platforms, of what the last reconcile found or "
        "made; a Site's Novacore site, or the Flatpeak location its `locationId` pins, found "
        "gone is removed. An Enapter Device's `enapterSite` is the Enapter site its device "
        "was found in or is being provisioned into, kept while Enapter cannot be read; its "
        "Site now another Enapter site, it stays the old one, where a slug-keyed device is "
        "found and replaced into the new site, until that replace is done.",
        examples=[{"novacore": "dev-abc123"}],
    )
    last_plan: LastPlan | None = Field(default=None, description="The last plan for this resource.")
    applied_secrets: AppliedSecrets | None = Field(
        default=None, description="Devices: the MQTT password last sent, as a fingerprint."
    )
    gateway: DeviceGateway | None = Field(
        default=None, description="Devices: the gateway the device was last found on or added to."
    )
    claims: list[ClaimedGateway] = Field(
        default_factory=list,
        description="Gateways: the serials claimed and not released, the one declared and "
        "those swapped out of the spec whose release waits for their devices to move.",
    )
    flatpeak_locations: list[FlatpeakLocation] = Field(
        default_factory=list,
        description="Devices: the Flatpeak locations their Site was found at or given, "
        "latest last; the device is moved off those that are not its Site's now. Sites: the "
        "locations they had (given another `locationId`, or a location made by their name) "
        "and their own last, which stay in Flatpeak: their deletion says so.",
    )
    flatpeak_location_not_found: str | None = Field(
        default=None,
        description="Sites: the Flatpeak location their spec's `locationId` names, which "
        "the last reconcile found missing from the account: the Site's deletion does not "
        "say that it stays in Flatpeak.",
        examples=["loc_8a1f2c"],
    )
    declared_fields: list[str] = Field(
        default_factory=list,
        description="The spec fields (names, never values) declared when a reconcile last "
        "converged: one declared no more is set back to the platform's default, or reported "
        "as no longer managed, as the CLI does from its inventory.",
        examples=[["connection.modbusTcp.port", "hardwareId"]],
    )
    unmanaged: UnmanagedObjects | None = Field(
        default=None,
        description="What the last plan found that nothing declares: a Gateway's Zap "
        "devices, a Site's Novacore devices, a Device's Novacore DERs.",
    )
    last_valid_spec: str | None = Field(
        default=None,
        description="The spec last found valid, as JSON: deleting the object while its spec "
        "is invalid honours this spec's `deletionPolicy`.",
        examples=['{"siteRef": "home", "deletionPolicy": "Release"}'],
    )
