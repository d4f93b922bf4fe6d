"""What a message advises its reader to do, said as each reader acts.

The planners and the engine serve two readers: the CLI's user, who has `apply --prune`,
`--target` and `--exclude`, and the operator's, who has none of them (the operator prunes
nothing it does not declare, lists it in `status.unmanaged`, and plans one object's
closure, selecting nothing). A message that advises something holds an `Advice`, which
says it both ways, and is worded for the `Audience` its caller names when it plans
(`planner.PlanOptions.audience`) or applies (`engine.execute.Executors`): the CLI and the
operator each choose theirs, so no text is rewritten after it was made. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Audience(StrEnum):
    """Who reads what a plan or an apply says."""

    CLI = "cli"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Advice:
    """One piece of advice as each audience takes it: `cli` may name the CLI's commands
    and flags, `operator` says what the operator's user does instead (or nothing, "",
    where the advice only says what a CLI flag would add). Either may hold `{name}`
    fields, filled by `to`."""

    cli: str
    operator: str

    def to(self, audience: Audience, **values: object) -> str:
        """The advice worded for `audience`, its fields filled with `values`."""
        text = self.cli if audience is Audience.CLI else self.operator
        # str.format fills the template only: a value's own braces are never read again.
        return text.format(**values) if values else text


# Said by a removal that only the CLI's `--prune` plans (a Zap copy, a cloud device nobody
# declares): which flag made it. The operator's user has no such flag to be told of.
PRUNED = Advice(cli=" (--prune)", operator="")
