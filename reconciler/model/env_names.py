"""Which environment variables `passwordFrom.env` may name, and which Secret keys
`passwordFrom.secretKeyRef.key` may.

The reconciler's own settings are `RECONCILER_*` variables, its cloud tokens and keys among
them (`engine.config`, `operator.config`). A device whose MQTT password came from one would
have the reconciler send that token to the gateway, which hands it to whatever broker
`brokerHost` names: anyone who may write a Device (a pull request applied by CI, a tenant of
a namespace the operator serves) could collect it. So a password variable never starts with
`RECONCILER_`, in any letter case: Windows reads variable names without regard to case, so
there `reconciler_novacore_token` is the token too.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

OWN_PREFIX = "RECONCILER_"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# The prefix in any case, as a pattern every engine that checks it reads alike (the ECMA 262
# of JSON Schema, the RE2 of Kubernetes CEL, Python's re): no inline flags, no lookahead.
OWN_PATTERN = "^" + "".join(
    f"[{c}{c.lower()}]" if c.isalpha() else c for c in OWN_PREFIX
)
OWN_RULE = (
    f"names starting with {OWN_PREFIX}, in any letter case, are the reconciler's own "
    "settings (its cloud tokens and keys)"
)
ADVICE = (
    "put the password in a variable of its own, such as FERROAMP_MQTT_PASSWORD, or in a "
    "Secret named with `secretKeyRef`"
)


def is_own_setting(name: str) -> bool:
    """Whether `name` is (or, read without regard to case, could be) a reconciler setting."""
    return name.upper().startswith(OWN_PREFIX)


def own_setting_problem(name: str) -> str | None:
    """Why `name` may not hold a device's password, or None."""
    if not is_own_setting(name):
        return None
    return (
        f"{name} is not allowed: {OWN_RULE}, which the reconciler would send to the gateway, "
        f"and the gateway to the broker, as this device's password; {ADVICE}"
    )


def _not_own_setting(name: str) -> str:
    problem = own_setting_problem(name)
    if problem:
        raise ValueError(problem)
    return name


# The schema says it too (`not`), so an editor flags it; the CRDs carry it as a CEL rule
# (`model.schema`), since a structural schema takes no `not`. The length bound keeps that
# rule's cost estimate small for the API server.
PasswordEnvName = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN, max_length=256),
    AfterValidator(_not_own_setting),
    Field(json_schema_extra={"not": {"pattern": OWN_PATTERN}}),
]


# A key of a Secret, as Kubernetes allows one (letters, digits, '-', '_', '.'), but neither
# `.` nor `..`: the CLI reads `<secrets dir>/<name>/<key>`, so a `/` or a `..` would read any
# file the reconciler can (its own environment, with the tokens, at /proc/self/environ) and
# send it to the broker as the password. No lookahead, so ECMA 262 and RE2 read it alike:
# at least one character that is not a dot, or three dots or more.
SECRET_KEY_PATTERN = r"^([-._a-zA-Z0-9]*[-_a-zA-Z0-9][-._a-zA-Z0-9]*|\.\.\.+)$"  # noqa: S105 - a pattern
SecretKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN),
]
