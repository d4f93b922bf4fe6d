"""The exit codes of every command, on their own so that `main` and the parser modules
read them without loading what the commands run."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by SIGINT
