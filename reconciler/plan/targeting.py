"""`--target` / `--exclude`: choose resources by address (`device/inv-1`) or by label
selector, with kubectl's syntax (`region=north`, `tier!=test`, `region in (north,west)`,
`tier notin (test)`, `customer`, `!legacy`). A target brings what it holds (a site
its gateways and devices, a device its DERs) and what those depend on (a device its gateway
and site), so `--target site/x` plans the whole site and `--target device/y` plans the device
with what it needs; an exclusion takes along everything that depends on it, and what a
target needs is planned only for a target the exclusions leave (one they leave nothing of
is an error, as one that matches nothing is).

A selector judges a resource by its labels merged over those of what holds it (a DER's
Device, a Device's Gateway, or its Site when it has no gateway, a Gateway's Site; the
resource's own value wins on the same key). That is how `region!=stockholm` reads: a
device of a Site labelled `region: stockholm` is in Stockholm whether or not it repeats
the label, so it is not selected (and does not bring its site along), and
`--exclude 'region!=stockholm'` keeps it. Judged by its own labels alone, `!=`, `notin`
and `!key` would match every unlabelled device, and bring along its site.

Objects found but not declared (what `--prune` removes, or reports as unmanaged) belong to
the gateway they were found on (a Novacore device to the gateway of its site it is bound
to, as its copy on the Zap) or the site they were found in; a selection keeps them when
that gateway or site is taken whole: targeted, or held by a target (not only brought along
as what a target needs), and not excluded. A DER that a declared Device's Novacore device
has and the Device does not declare belongs to that Device, and goes with it. Gateways
found claimed in an organisation but declared nowhere belong to no site, so a selection
leaves them out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.model.base import Resource
from reconciler.model.fleet import Fleet
from reconciler.model.kinds import KINDS as RESOURCE_KINDS
from reconciler.name_list import closest
from reconciler.printable import echo

Key = tuple[str, str]  # (kind, name) of a declared resource
KINDS = tuple(kind.lower() for kind in RESOURCE_KINDS)
SELECTOR_SYNTAX = (
    "key=value, key!=value, key in (a,b), key notin (a,b), key or !key, joined by commas"
)
# Label keys and values as Kubernetes allows them (an optional DNS prefix and a name).
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY = re.compile(rf"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?{_NAME}")
_VALUE = re.compile(rf"({_NAME})?")
_SET_TERM = re.compile(r"(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)")


class PatternError(ValueError):
    """A `--target`/`--exclude` pattern that is neither an address nor a label selector."""


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector, with Kubernetes' meaning: `!=` and `notin` also
    match a resource without the label."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        inside = value is not None and value in self.values
        return inside if self.operator in ("=", "in") else not inside


def _split_terms(selector: str) -> list[str]:
    """The terms of a selector: commas split them, except inside `in (a,b)`."""
    terms, depth, start = [], 0, 0
    for index, char in enumerate(selector):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise PatternError("closes a parenthesis it never opened")
        elif char == "," and depth == 0:
            terms.append(selector[start:index])
            start = index + 1
    if depth:
        raise PatternError("opens a parenthesis it never closes")
    terms.append(selector[start:])
    return [t.strip() for t in terms]


def _requirement(term: str) -> Requirement:
    if not term:
        raise PatternError("has an empty term (two commas in a row, or one at an end)")
    if match := _SET_TERM.fullmatch(term):
        key, operator = match["key"], match["op"]
        listed = match["values"].strip()
        values = [v.strip() for v in listed.split(",")] if listed else []
    elif "!=" in term:
        key, value = term.split("!=", 1)
        operator, values = "!=", [value]
    elif "=" in term:
        key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
        operator, values = "=", [value]
    elif term.startswith("!"):
        key, operator, values = term[1:], "!exists", []
    else:
        key, operator, values = term, "exists", []
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise PatternError(f"{echo(key)} is not a label key")
    if operator in ("in", "notin") and not values:
        # As kubectl refuses it. Read as the one value '', `notin ()` would pick nearly
        # everything (and `--exclude` leave nearly nothing) with no word said.
        raise PatternError(f"'{operator} ()' lists no value; list at least one, as in "
                           f"{key} {operator} (north,west)")
    values = [v.strip() for v in values]
    for value in values:
        if not _VALUE.fullmatch(value):
            raise PatternError(f"{echo(value)} is not a label value")
    return Requirement(key, operator, frozenset(values))


def parse_selector(selector: str) -> list[Requirement]:
    """The requirements of a label selector; PatternError says what is wrong with it."""
    try:
        return [_requirement(term) for term in _split_terms(selector)]
    except PatternError as exc:
        raise PatternError(
            f"{echo(selector)}: {exc}; use kind/name (e.g. device/inv-1) or a label selector "
            f"({SELECTOR_SYNTAX})"
        ) from None


def _address(pattern: str) -> tuple[str, str] | None:
    """(kind, name) when the pattern is an address. `kind/name` has no dot before the
    slash; a label key with a DNS prefix (`example.com/tier`) has one."""
    kind, slash, name = pattern.partition("/")
    if not slash or "." in kind or any(c in pattern for c in "=!(), "):
        return None
    if not kind or not name:
        # Said as such: `device/` (a name left out of a script's `device/$NAME`) would
        # otherwise match no resource, and `/x` be an unknown kind '', both beside the point.
        empty = " and ".join(part for part, value in (("kind", kind), ("name", name))
                             if not value)
        raise PatternError(
            f"{echo(pattern)}: the {empty} of the address is empty; an address is kind/name "
            "(e.g. device/inv-1), the kind one of " + ", ".join(KINDS)
        )
    if kind.lower() not in KINDS:
        raise PatternError(
            f"{echo(pattern)}: unknown kind {echo(kind)}; an address is kind/name, the kind one of "
            + ", ".join(KINDS)
        )
    return kind.lower(), name


@dataclass(frozen=True)
class Pattern:
    """A parsed `--target`/`--exclude` pattern: an address or a label selector."""

    text: str
    address: tuple[str, str] | None
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Pattern:
        address = _address(text)
        if address is not None:
            return cls(text, address)
        return cls(text, None, tuple(parse_selector(text)))

    def matches(self, resource: Resource, labels: Mapping[str, str]) -> bool:
        """Whether the pattern picks `resource`; `labels` are its `inherited_labels`."""
        if self.address is not None:
            return (resource.KIND.lower(), resource.name) == self.address
        return all(r.holds(labels) for r in self.requirements)


def _key(resource: Resource) -> tuple[str, str]:
    return (resource.KIND, resource.name)


def _holder(fleet: Fleet, resource: Resource) -> Resource | None:
    """What holds `resource`: a DER's Device, a Device's Gateway (its Site when it has no
    gateway), a Gateway's Site; None for a Site or a dangling reference."""
    spec = resource.spec
    for kind, ref in (
        ("Device", getattr(spec, "device_ref", None)),
        ("Gateway", getattr(spec, "gateway_ref", None)),
        ("Site", getattr(spec, "site_ref", None)),
    ):
        if ref and ref in fleet.table(kind):
            return fleet.table(kind)[ref]
    return None


def inherited_labels(fleet: Fleet) -> dict[Key, dict[str, str]]:
    """Each resource's labels merged over those of what holds it, outermost first, so
    its own value wins on the same key."""
    out: dict[Key, dict[str, str]] = {}

    def labels_of(resource: Resource, seen: frozenset[Key]) -> dict[str, str]:
        key = _key(resource)
        if key not in out:
            holder = _holder(fleet, resource)
            # `seen` guards against a reference cycle, which validation reports anyway.
            outer = (
                labels_of(holder, seen | {key})
                if holder is not None and _key(holder) not in seen | {key}
                else {}
            )
            out[key] = {**outer, **resource.metadata.labels}
        return out[key]

    for resource in fleet.resources():
        labels_of(resource, frozenset())
    return out


def _dependencies(fleet: Fleet, resource: Resource) -> list[Resource]:
    spec = resource.spec
    out: list[Resource] = []
    # An Enapter Lua device also needs its runtime, a LINK slave its master.
    enapter = getattr(spec, "enapter", None)
    refs = (
        ("Site", getattr(spec, "site_ref", None)),
        ("Gateway", getattr(spec, "gateway_ref", None)),
        ("Device", getattr(spec, "device_ref", None)),
        ("Device", getattr(enapter, "runtime_ref", None)),
        ("Device", getattr(enapter, "master_ref", None)),
    )
    for kind, ref in refs:
        if ref and ref in fleet.table(kind):
            out.append(fleet.table(kind)[ref])
    return out


Graph = dict[Key, list[Resource]]


def _graphs(fleet: Fleet) -> tuple[Graph, Graph]:
    """(what each resource depends on, what depends on each resource), built once."""
    depends: Graph = {}
    dependents: Graph = {}
    for resource in fleet.resources():
        depends[_key(resource)] = _dependencies(fleet, resource)
        for parent in depends[_key(resource)]:
            dependents.setdefault(_key(parent), []).append(resource)
    return depends, dependents


def _closure(start: Iterable[Resource], edges: Graph) -> set[Key]:
    seen: set[Key] = set()
    stack = list(start)
    while stack:
        resource = stack.pop()
        if _key(resource) in seen:
            continue
        seen.add(_key(resource))
        stack += edges.get(_key(resource), [])
    return seen


@dataclass(frozen=True)
class Selection:
    """What `--target`/`--exclude` leave in a plan: `resources`, (kind, name) of the
    declared resources to plan, and `owners`, the Sites and Gateways taken whole, whose
    undeclared objects the plan keeps (reports, or removes with `--prune`)."""

    resources: frozenset[Key]
    owners: frozenset[Key]

    def owns(self, kind: str, name: str) -> bool:
        return (kind, name) in self.owners


def _matching(
    resources: list[Resource], patterns: list[str], labels: dict[Key, dict[str, str]]
) -> list[Resource]:
    parsed = [Pattern.parse(p) for p in patterns]
    return [r for r in resources if any(p.matches(r, labels[_key(r)]) for p in parsed)]


def select(fleet: Fleet, targets: list[str], excludes: list[str]) -> Selection | None:
    """What to plan, or None for everything."""
    if not targets and not excludes:
        return None
    resources = list(fleet.resources())
    by_key = {_key(r): r for r in resources}
    labels = inherited_labels(fleet)
    depends, dependents = _graphs(fleet)
    held = _closure(_matching(resources, targets, labels), dependents) if targets else set(by_key)
    if excludes:
        held -= _closure(_matching(resources, excludes, labels), dependents)
    # What the targets left after the exclusions need, and only that: needs of a target
    # that was excluded are not planned for it. (Nothing excluded is needed here: whatever
    # depends on an excluded resource is excluded too.)
    selected = _closure((by_key[k] for k in held), depends)
    # What a target only needs (a device's site) is planned but not taken whole: its
    # undeclared objects stay out, or `--target device/x --prune` would empty its site.
    owners = {key for key in held if key[0] in ("Site", "Gateway")}
    return Selection(frozenset(selected), frozenset(owners))


def excluded_targets(fleet: Fleet, targets: list[str], excludes: list[str]) -> list[str]:
    """Each target that `excludes` leave nothing of, naming the exclusion and, when the
    target is excluded for what it depends on, that: such a target selects nothing, as one
    that matches nothing does (the patterns are known to parse)."""
    if not targets or not excludes:
        return []
    resources = list(fleet.resources())
    labels = inherited_labels(fleet)
    _, dependents = _graphs(fleet)
    dropping = [
        (text, _closure(_matching(resources, [text], labels), dependents)) for text in excludes
    ]
    dropped = set().union(*(keys for _, keys in dropping))
    problems = []
    for text in targets:
        matched = _matching(resources, [text], labels)
        if not matched or any(_key(r) not in dropped for r in matched):
            continue
        first = matched[0]
        by = next(by for by, keys in dropping if _key(first) in keys)
        if Pattern.parse(by).matches(first, labels[_key(first)]):
            problems.append(f"{echo(text)} selects nothing: --exclude {echo(by)} leaves it out")
        else:
            problems.append(
                f"{echo(text)} selects nothing: --exclude {echo(by)} leaves out what "
                f"{first.KIND.lower()}/{first.name} depends on, and a resource is not "
                "planned without what it depends on"
            )
    return problems


def pattern_problems(fleet: Fleet, patterns: list[str]) -> list[str]:
    """What is wrong with each pattern that cannot select anything: one that does not
    parse, names an unknown kind, or matches no resource (reported to the user, not
    silently ignored)."""
    resources = list(fleet.resources())
    labels = inherited_labels(fleet)
    problems = []
    for text in patterns:
        try:
            pattern = Pattern.parse(text)
        except PatternError as exc:
            problems.append(str(exc))
            continue
        if not any(pattern.matches(r, labels[_key(r)]) for r in resources):
            problems.append(f"{echo(text)} matches no resource{_hint(pattern, resources, labels)}")
    return problems


# How many label values a hint lists: enough to spot a typo, not a fleet's worth.
_LISTED = 10


def _hint(
    pattern: Pattern, resources: list[Resource], labels: dict[Key, dict[str, str]]
) -> str:
    """What the user may have meant by a pattern that matches nothing (a typo, as often as
    not): the same name of another kind, the closest name of that kind, the closest label
    key, or the values a key has; "" when nothing comes close. A name that is there under
    another kind says the kind was the slip, so it comes first."""
    if pattern.address is not None:
        kind, name = pattern.address
        other = next((r for r in resources if r.name == name), None)
        if other is not None:
            return f" (did you mean {other.KIND.lower()}/{name}?)"
        close = closest(name, (r.name for r in resources if r.KIND.lower() == kind))
        return f" (did you mean {kind}/{close}?)" if close is not None else ""
    values: dict[str, set[str]] = {}
    for merged in labels.values():
        for key, value in merged.items():
            values.setdefault(key, set()).add(value)
    for requirement in pattern.requirements:
        key = requirement.key
        if requirement.operator in ("=", "in", "exists") and key not in values:
            close = closest(key, values)
            meant = f"; did you mean {echo(close)}?" if close is not None else ""
            return f" (no resource has the label {echo(key)}{meant})"
        if requirement.operator in ("=", "in") and not requirement.values & values[key]:
            known = sorted(values[key])
            shown = ", ".join(known[:_LISTED]) + (", ..." if len(known) > _LISTED else "")
            wrong = sorted(requirement.values)[0]
            close = closest(wrong, known)
            meant = f"did you mean {key}={close}? " if close is not None else ""
            return f" ({meant}{key} has the values {shown})"
    return ""
