#!/bin/sh
# reconciler-ci.sh: a pull-request check for any CI system (GitLab CI, Jenkins, Buildkite,
# Woodpecker, Azure Pipelines, ...): validate the desired state, plan it against the real
# gateways and clouds (a dry run: nothing is written), save the plan as Markdown (for a
# review comment) and JSON (for tools, or `reconciler apply plan.json` after the merge),
# and exit with a code the pipeline can branch on.
#
# usage:   ci/reconciler-ci.sh [PATH...]          (default PATH: sites)
#
# environment:
#   RECONCILER_*              endpoints and credentials, as for `reconciler plan` (README);
#                             keep the tokens in the CI system's secret store
#   RECONCILER_BIN            the reconciler command (default: reconciler)
#   RECONCILER_OUT_DIR        where plan.md and plan.json are written (default: .)
#   RECONCILER_CHANGES_EXIT   exit code when changes are planned (default: 2; set 0 to
#                             let a plan with changes pass the job)
#   RECONCILER_PLAN_ARGS      extra arguments for `reconciler plan`, e.g. "--prune" or
#                             "--offline fail" (word-split; no quoting inside)
#
# exit codes (those of `reconciler plan --detailed-exitcode`):
#   0  valid, and nothing to apply: the actual state already matches, or differs only by
#      objects found that nothing declares (unmanaged, left as they are: see plan.md)
#   1  error: a path that does not exist, invalid YAML, blocked changes, rejected
#      credentials, ... (the last line says which)
#   2  valid, and changes are planned (or RECONCILER_CHANGES_EXIT): review plan.md
#
# `pip install energy-reconciler` installs the reconciler, not this script: copy it into the
# repository of your sites (as ci/reconciler-ci.sh), or fetch it from the tag you install.
#
# GitLab CI, for example:
#   reconciler-plan:
#     image: python:3.12
#     script:
#       - pip install energy-reconciler
#       - sh ci/reconciler-ci.sh sites
#     allow_failure: { exit_codes: [2] }
#     artifacts: { paths: [plan.md, plan.json], when: always }
set -u

bin=${RECONCILER_BIN:-reconciler}
out=${RECONCILER_OUT_DIR:-.}
changes_exit=${RECONCILER_CHANGES_EXIT:-2}
[ "$#" -gt 0 ] || set -- sites

# Each failure says what went wrong, not only that something did (exit 1 for all of them).
fail() {
    echo "reconciler-ci: exit 1: $*" >&2
    exit 1
}

mkdir -p "$out" ||
    fail "cannot make the directory RECONCILER_OUT_DIR names ($out) for plan.md and plan.json"
# The outputs of an earlier run in the same folder go first, whatever happens next: a run
# that stops early must not leave the previous plan to be read (or uploaded) as its own.
rm -f "$out/plan.md" "$out/plan.json" ||
    fail "cannot remove the plan.md and plan.json of an earlier run from $out"
case $changes_exit in
    ''|*[!0-9]*)
        fail "RECONCILER_CHANGES_EXIT must be an exit code (a number from 0 to 255, default 2);" \
             "got '$changes_exit'" ;;
esac
[ "$changes_exit" -le 255 ] ||
    fail "RECONCILER_CHANGES_EXIT must be an exit code (a number from 0 to 255, default 2);" \
         "got '$changes_exit'"
for path in "$@"; do
    [ -e "$path" ] || fail "$path does not exist (in $(pwd)); pass the paths of the desired" \
                           "state as arguments (default: sites); nothing was planned"
done

echo "==> reconciler validate $*"
code=0
"$bin" validate "$@" || code=$?
case $code in
    0) ;;
    1) fail "the desired state is invalid (every problem is listed above with" \
            "file:line:column); nothing was planned" ;;
    126|127) fail "cannot run '$bin' (exit $code; RECONCILER_BIN names the reconciler" \
                  "command, default: reconciler); nothing was planned" ;;
    *) fail "the validation failed (validate command exit $code); see the errors above;" \
            "nothing was planned" ;;
esac

echo "==> reconciler plan $* -o markdown --detailed-exitcode --out $out/plan.json > $out/plan.md"
code=0
# One observation gives both files: the Markdown on stdout, the JSON document via --out.
# shellcheck disable=SC2086 # RECONCILER_PLAN_ARGS is split into arguments on purpose
"$bin" plan "$@" ${RECONCILER_PLAN_ARGS:-} -o markdown --detailed-exitcode \
    --out "$out/plan.json" > "$out/plan.md" || code=$?
status=$code
# Exit 2 means changes only with plan.json written: the reconciler exits 1 on a usage error
# (a mistyped option in RECONCILER_PLAN_ARGS), but a wrapper in RECONCILER_BIN, or
# something else that dies with 2 before planning, must not pass for "changes planned".
if [ "$code" -eq 2 ] && [ ! -s "$out/plan.json" ]; then
    code=1
fi

case $code in
    0)
        # Unmanaged objects are no change, but no match either: the summary's count says.
        unmanaged=$(sed -n 's/^    "unmanaged": \([0-9][0-9]*\),\{0,1\}$/\1/p' "$out/plan.json")
        if [ "${unmanaged:-0}" -gt 0 ]; then
            echo "reconciler-ci: exit 0: no changes; $out/plan.md lists $unmanaged" \
                 "unmanaged object(s): found, declared nowhere, left as they are"
        else
            echo "reconciler-ci: exit 0: no changes; the gateways and clouds match the" \
                 "desired state"
        fi
        exit 0 ;;
    2)
        echo "reconciler-ci: changes planned; review $out/plan.md (the plan as JSON:" \
             "$out/plan.json); exit $changes_exit"
        exit "$changes_exit" ;;
    *)
        echo "reconciler-ci: exit 1: the plan failed (plan command exit $status); see the" \
             "errors above" >&2
        exit 1 ;;
esac
