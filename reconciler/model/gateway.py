"""The `Gateway` kind: a Sourceful Zap (claimed into a Novacore organisation and driven
over its local HTTP API) or an Enapter Gateway (provisioned into an Enapter site)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BeforeValidator, Field, model_validator

from reconciler.model.base import Identifier, Resource, ResourceName, StrictModel
from reconciler.model.network import query_problem, url_problem

# The Zap firmware's id is "zap-" + 16 lowercase hex digits of the MAC; documentation examples
# show shorter forms such as zap-04772a97, so any hex length from 4 to 32 is accepted.
ZAP_SERIAL_PATTERN = r"^zap-[0-9a-f]{4,32}$"


# What a Zap's base URL looks like, for messages.
ZAP_URL_EXAMPLES = "http://192.168.1.40 or http://zap.local"


def _gateway_url(value: object) -> object:
    """Checked before pydantic parses the URL: its errors and the parsed URL would both
    carry a password along, and it reads `http://192.168.1` as http://192.168.0.1."""
    if isinstance(value, str):
        # Credentials first: a password may hold a '?' or '#', and is masked then.
        problem = url_problem(value) or query_problem(value, ZAP_URL_EXAMPLES)
        if problem is not None:
            raise ValueError(problem)
    return value


# The gateway's URL is shown in plans and messages: it may hold no credentials; its host is
# a name or an address as every program reads it; and the Zap API's paths are appended to
# it, so it has no query or fragment.
GatewayUrl = Annotated[AnyHttpUrl, BeforeValidator(_gateway_url)]

# The query and fragment rule as the schemas' `pattern`, so that an editor flags it and the
# API server refuses it at `kubectl apply`: no '?' nor '#' from start to end, or else an '@'
# anywhere. A URL with an '@' is left to the loader and the operator: it may be a password
# holding a '?' or '#', and the API server's refusal would repeat the value whole, where
# their message masks the password (so the schemas leave a URL with credentials to them).
NO_QUERY_PATTERN = r"^[^?#]*$|@"


class DeletionPolicy(StrEnum):
    """What happens outside when the resource is removed from the desired state."""

    ORPHAN = "Orphan"
    RELEASE = "Release"


class ZapGateway(StrictModel):
    """A Sourceful Zap gateway."""

    serial: str = Field(
        pattern=ZAP_SERIAL_PATTERN,
        description="Gateway serial as reported by GET /api/crypto: `zap-` followed by "
        "lowercase hex digits.",
        examples=["zap-0123456789abcdef"],
    )
    url: GatewayUrl = Field(
        description="Base URL of the Zap's local HTTP API, reachable from where the "
        "reconciler runs: without a query ('?...') or fragment ('#...').",
        examples=["http://192.168.1.40"],
        json_schema_extra={"pattern": NO_QUERY_PATTERN},
    )
    org_id: Identifier | None = Field(
        default=None,
        description="Novacore organisation to claim the gateway into. Defaults to the "
        "organisation of the gateway's site.",
        examples=["org-abc123"],
    )
    allow_transfer: bool = Field(
        strict=True,
        default=False,
        description="Allow claiming a gateway that another organisation owns. A transfer "
        "orphans that organisation's devices, so it must be asked for explicitly.",
        examples=[False],
    )


class EnapterGateway(StrictModel):
    """An Enapter Gateway (provisioned with POST v3/provisioning/gateway)."""

    hardware_id: Identifier = Field(
        min_length=1,
        description="Enapter Gateway hardware id.",
        examples=["B27925CBA5375484E829105E959663C8B"],
    )
    firmware_version: str = Field(
        pattern=r"^\d+\.\d+\.\d+$",
        description="Gateway firmware version. Virtual UCMs and LINK devices need 3.x.",
        examples=["3.0.0"],
    )


class GatewaySpec(StrictModel):
    """Desired state of a gateway. Exactly one of `zap` or `enapter` is set."""

    site_ref: ResourceName = Field(description="Name of the Site the gateway is installed at.")
    zap: ZapGateway | None = Field(default=None, description="Sourceful Zap settings.")
    enapter: EnapterGateway | None = Field(default=None, description="Enapter Gateway settings.")
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.ORPHAN,
        description="`Orphan` (default) leaves the gateway claimed when it is removed from "
        "the desired state; `Release` releases it from the organisation.",
        examples=["Orphan"],
    )

    @model_validator(mode="after")
    def _exactly_one_platform(self) -> GatewaySpec:
        if (self.zap is None) == (self.enapter is None):
            raise ValueError("set exactly one of `zap` or `enapter`")
        return self


class Gateway(Resource):
    """A gateway at a site."""

    KIND = "Gateway"
    kind: Literal["Gateway"] = Field(description="Always `Gateway`.", examples=["Gateway"])
    spec: GatewaySpec = Field(description="Desired state of the gateway.")
