"""The size limits of the Markdown plan (`plan.markdown`), apart from its renderer: `plan
--help` and the option's check name them, and every command's start builds that parser,
which need not load the renderer."""

# `plan --markdown-limit` by default: under GitHub's 65,536 with room for what a workflow
# puts above the plan (ci/github/reconciler-plan.yml adds a marker and a status line).
DEFAULT_LIMIT = 60_000
# Below this a limit leaves no room for more than the summary and the note.
MIN_LIMIT = 2_000
