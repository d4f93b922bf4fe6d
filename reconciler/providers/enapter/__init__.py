"""Enapter Cloud HTTP API v3: `client` (HTTP calls only) and `convert` (pure payload ↔
records and request bodies)."""
