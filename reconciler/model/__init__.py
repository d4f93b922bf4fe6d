"""PURE resource model: pydantic models of the four kinds, the type vocabularies, the
cross-resource rules and the schema renderers. Imports no network or cluster library."""
