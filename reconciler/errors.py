"""The exception tree of the reconciler, shared by every layer.

    ReconcilerError
     ├── ConfigError          input that cannot be used: desired state, settings or command-line
     │                        arguments (carries located diagnostics)
     ├── DanglingRefError     a reference to a resource that is not declared
     ├── PlanError            a plan that cannot be built or is stale
     ├── FileNotRemoved       a file the reconciler wrote on this host could not be removed
     │                        (a file-system error): the next run tries again
     ├── FileNotWritten       a file the reconciler writes on this host could not be
     │                        written (a full disk, a read-only mount): the next run
     │                        tries again
     └── ProviderError        an external call failed (address, operation)
          ├── ProviderUnavailable   network, timeout, 5xx, 429: retryable
          ├── ProviderRejected      4xx: permanent until the input changes
          ├── ProviderConflict      409: the remote object is in another state
          └── ProviderAuthError     401/403: credentials missing or wrong; or the
                                    server's TLS certificate does not verify
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.printable import clipped_path


@dataclass(frozen=True)
class Diagnostic:
    """One problem in the desired state, located as precisely as the source allows."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str = ""

    def location(self, file: str | None = None) -> str:
        """`file:line:column` (whatever parts are known); `<input>` when none is. `file`
        in place of the diagnostic's own, as shown (escaped)."""
        parts = [file or self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        return self.shown(self.file, clipped_path(self.path))

    def shown(self, file: str | None, path: str) -> str:
        """The diagnostic with `file` and `path` as given: the ones to show (cut, escaped)."""
        if self.file is None and self.line is None and path:
            # Not from a file (an environment variable, a command-line option): the path
            # alone says where.
            return f"{path}: {self.message}"
        where = f" {path}:" if path else ""
        return f"{self.location(file)}:{where} {self.message}"

    def as_dict(self) -> dict[str, object]:
        """For JSON (`validate -o json`, the watch agent's events): the path cut as the
        text cuts it, the message being cut already."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": clipped_path(self.path),
            "message": self.message,
        }


class ReconcilerError(Exception):
    """Root of every error the reconciler raises on purpose. `retryable`: trying again
    later (the next apply, the operator's next reconcile) may succeed with the same input,
    so the operator retries the object instead of holding its writes until its spec
    changes (`Outcome.retryable`)."""

    retryable = False


class ConfigError(ReconcilerError):
    """Input that cannot be used; `diagnostics` lists the problems found, and `omitted`
    counts, per file, those past the cap of the desired state's loader (`diagnostic_cap`).
    `subject` names the input for the summary line: "desired state", "settings" or
    "arguments"."""

    def __init__(
        self,
        diagnostics: list[Diagnostic],
        *,
        subject: str = "desired state",
        omitted: dict[str | None, int] | None = None,
    ) -> None:
        self.diagnostics = diagnostics
        self.subject = subject
        self.omitted = omitted or {}
        count = len(diagnostics) + sum(self.omitted.values())
        head = str(diagnostics[0]) if diagnostics else "invalid configuration"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(head + more)


class DanglingRefError(ReconcilerError):
    """A reference names a resource that is not declared."""


class PlanError(ReconcilerError):
    """A plan cannot be built, or a saved plan no longer matches reality."""


class FileNotRemoved(ReconcilerError):
    """A file the reconciler wrote on this host (an Enapter device's config file) could not
    be removed: a file-system error (an immutable file, a directory's permissions), no
    platform's answer. Nothing declared stops it, so it is worth trying again later: the
    next apply does, and the operator's next reconcile, without holding the object's
    writes back (`Outcome.retryable`). Not within the run: trying the change again would
    repeat the platform writes it made before the removal (a replace would provision its
    device again)."""

    retryable = True


class FileNotWritten(ReconcilerError):
    """A file the reconciler writes on this host (an Enapter device's config file, or the
    state directory's record of it) could not be written: a full disk, a read-only mount, a
    directory's permissions; no platform's answer, and nothing the spec says. Worth trying
    again later: the next apply does, and the operator's next reconcile, without holding
    the object's writes back. Not within the run, for the reason `FileNotRemoved` gives: a
    create tried again whole would provision its device again, where the next run's plan
    finds the device made and only generates and writes its config."""

    retryable = True


class ProviderError(ReconcilerError):
    """An external call failed. `address` names the resource, `operation` the call.
    `retryable`: trying again later may succeed (a run gives it up as failed, not for good);
    `retried_at_once`: a retryable error is also tried again within the run (`retrying`)."""

    retryable = False
    retried_at_once = True

    def __init__(
        self,
        message: str,
        *,
        address: str = "",
        operation: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        url_setting: str = "",
    ) -> None:
        self.address = address
        self.operation = operation
        self.status = status
        self.retry_after = retry_after
        # The setting of a base URL with a path, when the call was answered 404: the path
        # may be what was not found (`providers.transport.error_for`).
        self.url_setting = url_setting
        super().__init__(message)


class ProviderUnavailable(ProviderError):
    """Network failure, timeout, 5xx or 429: worth retrying later."""

    retryable = True


class ProviderRejected(ProviderError):
    """The remote API refused the request (4xx): retrying the same input will not help."""


class ProviderConflict(ProviderError):
    """The remote object exists in a conflicting state (409)."""


class ProviderAuthError(ProviderError):
    """Credentials are missing, invalid or lack permission (401/403), or the server's TLS
    certificate does not verify (the server is not the one trusted), or the server speaks
    no TLS where an https:// URL asks for it. Either way a setting must change: retrying
    cannot help, so a plan stops at it rather than defer."""

    def __init__(
        self, message: str, *, credential_refused: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        # The platform refused the credential itself (expired or wrong), not a permission
        # or a certificate: a 401, unless the platform's client knows its own answer
        # better (Enapter says an invalid or expired token with a 403).
        self.credential_refused = (
            self.status == 401 if credential_refused is None else credential_refused
        )
