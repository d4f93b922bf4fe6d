"""Flatpeak API: `client` (HTTP calls and the bearer-token `httpx.Auth`) and `convert`
(pure payload ↔ records and request bodies)."""
