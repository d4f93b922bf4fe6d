"""PURE planning: observed-state records, the diff of declared fields, the planner that
turns (desired, observed, options) into ordered actions, the versioned plan document and
its renderers. No I/O and no clock."""
