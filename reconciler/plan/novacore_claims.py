"""Gateway claims in Novacore: the organisation a Gateway is claimed into (`claim_org`), the
release of a gateway no Gateway declares any more (`serial_release`), and what a plan says
of an organisation its token may not read (`no_access_message`).
"""

from __future__ import annotations

from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan.actions import Action, Change, Reason, address_of
from reconciler.plan.observed import NoAccess


def serial_release(serial: str, org: str, message: str) -> Change:
    """The release from `org` of gateway `serial`, one no Gateway declares any more (its
    deletionPolicy Release remembered): named by its serial, as it has no resource."""
    return Change(
        address=address_of("Gateway", serial, "novacore"),
        kind="Gateway",
        name=serial,
        component="novacore",
        action=Action.RELEASE,
        reason=Reason.DELETION_POLICY,
        before={"serial": serial, "org_id": org},
        external_id=serial,
        message=message,
    )


def claim_org(gateway: Gateway, site: Site | None) -> str:
    """The Novacore organisation a gateway is claimed into: its own `orgId`, else its
    Site's ("" when neither says)."""
    zap = gateway.spec.zap
    assert zap is not None
    if zap.org_id:
        return zap.org_id
    return site.spec.novacore.org_id if site is not None and site.spec.novacore else ""


def no_access_message(org: str, denied: NoAccess, field_name: str) -> str:
    """Why nothing is planned in an organisation the token may not read, and what to fix:
    the URL too, when its path may be what was not found."""
    fixes = [f"correct {field_name}", f"give the token's identity a role in {org}"]
    if denied.url_setting:
        fixes.insert(0, f"check {denied.url_setting}")
    said = ", or ".join(fixes)
    return (
        f"Novacore organisation {org} cannot be read with this token ({denied.reason}); "
        f"nothing is claimed or provisioned in it. {said[0].upper()}{said[1:]}"
    )
