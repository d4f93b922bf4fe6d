"""Declarative reconciler for energy sites: desired state in YAML, actual state from
gateways and clouds, a plan between them, and an apply that makes them match."""

__version__ = "0.1.0"

__all__ = ["__version__"]
