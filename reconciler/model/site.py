"""The `Site` kind: a physical place with a timezone and a location, and the identity of
that place on each cloud platform (one optional block per platform)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reconciler.model import timezones
from reconciler.model.base import DisplayText, Identifier, Resource, StrictModel
from reconciler.printable import echo


class PostalAddress(StrictModel):
    """Postal address, used where a platform needs one (Flatpeak locations)."""

    line1: str = Field(min_length=1, description="First address line.", examples=["Storgatan 1"])
    line2: str | None = Field(
        default=None, description="Second address line.", examples=["Lgh 1102"]
    )
    city: str = Field(min_length=1, description="City.", examples=["Solna"])
    post_code: str = Field(min_length=1, description="Postal code.", examples=["169 70"])
    country_code: str = Field(
        description="ISO 3166-1 alpha-2 country code.", examples=["SE"], pattern=r"^[A-Z]{2}$"
    )


class Location(StrictModel):
    """Where the site is."""

    name: str | None = Field(
        default=None, description="Human name of the place.", examples=["Solna"]
    )
    latitude: float = Field(
        strict=True,
        allow_inf_nan=False,
        ge=-90,
        le=90,
        description="Latitude in degrees.",
        examples=[59.36],
    )
    longitude: float = Field(
        strict=True,
        allow_inf_nan=False,
        ge=-180,
        le=180,
        description="Longitude in degrees.",
        examples=[18.0],
    )
    address: PostalAddress | None = Field(default=None, description="Postal address.")


class NovacoreSite(StrictModel):
    """The site in Sourceful Novacore."""

    org_id: Identifier = Field(
        description="Novacore organisation that owns the site.",
        examples=["org-abc123"],
        min_length=1,
    )
    site_id: Identifier | None = Field(
        default=None,
        description="Existing Novacore site id to adopt. When absent, the site is found by "
        "display name in the organisation; failing that, a site that no other Site claims and "
        "that holds this Site's devices and nothing else is this site renamed (it is renamed "
        "back); else a site is created.",
        examples=["sit-abc123"],
    )


class EnapterSite(StrictModel):
    """The site in Enapter Cloud (API v3)."""

    site_id: Identifier | None = Field(
        default=None,
        description="Existing Enapter site id to adopt. When absent, the site is found by "
        "display name; failing that, a site that no other Site claims and that holds this "
        "Site's gateway and devices and nothing else is this site renamed (it is renamed "
        "back); else a site is created, unless its gateway or devices are in a site not "
        "taken over (the plan then blocks, saying which).",
        examples=["sitebba0-79f2-4e9e-a6f0-69a310ab110b"],
    )


class FlatpeakSite(StrictModel):
    """The site as a Flatpeak location (tariff-aware control)."""

    location_id: Identifier | None = Field(
        default=None,
        description="Existing Flatpeak location id. When absent, a location is found by "
        "reference id (the site name), or created from the site's postal address.",
        examples=["loc_641b90b758fb8e6293716e40"],
    )
    customer_id: Identifier | None = Field(
        default=None,
        description="Flatpeak customer id the location belongs to.",
        examples=["cus_661677911f2197045e6cf1b1"],
    )


class SiteSpec(StrictModel):
    """Desired state of a site."""

    display_name: DisplayText = Field(
        min_length=1,
        description="Human-readable site name, shown in the clouds.",
        examples=["Home, Solna"],
    )
    timezone: str = Field(description="IANA timezone of the site.", examples=["Europe/Stockholm"])
    location: Location | None = Field(default=None, description="Where the site is.")
    novacore: NovacoreSite | None = Field(default=None, description="Sourceful Novacore settings.")
    enapter: EnapterSite | None = Field(default=None, description="Enapter Cloud settings.")
    flatpeak: FlatpeakSite | None = Field(default=None, description="Flatpeak settings.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if value not in timezones.names():
            meant = timezones.spelled(value)
            hint = f" (did you mean {echo(meant)}?)" if meant is not None else ""
            raise ValueError(
                f"unknown timezone {echo(value)}{hint}; use an IANA name such as "
                "'Europe/Stockholm' or 'UTC'"
            )
        return value


class Site(Resource):
    """A physical site."""

    KIND = "Site"
    kind: Literal["Site"] = Field(description="Always `Site`.", examples=["Site"])
    spec: SiteSpec = Field(description="Desired state of the site.")
