"""The registry of resource kinds: kind name -> model class, in dependency order."""

from __future__ import annotations

from reconciler.model.base import Resource
from reconciler.model.der import DER
from reconciler.model.device import Device
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site

# Dependency order: a kind may only reference kinds before it.
KINDS: dict[str, type[Resource]] = {cls.KIND: cls for cls in (Site, Gateway, Device, DER)}

AnyResource = Site | Gateway | Device | DER
