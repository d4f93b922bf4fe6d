"""Simulators of every platform the reconciler drives: stateful HTTP servers (and Modbus
TCP devices) on loopback that speak each API as documented in platform-apis.md, with
faults on demand. Tests, benchmarks, `reconciler sim` and `reconciler demo` start them;
the engine never imports this package."""
