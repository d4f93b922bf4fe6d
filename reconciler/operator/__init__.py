"""The Kubernetes operator: kopf handlers that reconcile Site, Gateway, Device and DER
custom resources one object at a time with the same engine as the CLI."""
