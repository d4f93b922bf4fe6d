"""The garbage collector and the operator's long-lived objects.

A namespace's built fleet (`namespace_fleets`: thousands of validated models, the index's
documents and what was read of them) lives as long as the namespace is unchanged, most of
it for as long as the operator runs. A full collection goes through every object alive: at
4,000 objects of a namespace about 120 ms, added to whichever reconcile it fell in (3 in
200 rebuilds after one edit, those reconciles taking up to 190 ms). After a namespace's
first build, what is garbage is collected once and what is alive frozen (`gc.freeze`):
later full collections go through only what was made since, about 15 ms each, and no
rebuild took more than 70 ms (`benchmarks/operator_fleet.py`, `--reconciles 200`).

A frozen object that dies is still freed by its reference count, as the models, documents
and fleets are: none of them holds a cycle. Only a frozen object that dies in a cycle would
never be freed (say, a task of the reconcile running the freeze that ends with an exception
holding its frame): at most what is alive at each namespace's first build, once per
namespace, not a leak that grows; the collection before each freeze leaves no garbage to be
frozen with them.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then leave what is alive out of later collections."""
    gc.collect()
    gc.freeze()
