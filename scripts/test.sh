#!/usr/bin/env bash
# THE test command:  bash scripts/test.sh [pytest args...]   (default: the whole suite)
#
#  1. scripts/setup-dev.sh: .venv with sqsw (core + all plugins, editable) + dev tools
#  2. LocalStack in its own venv (.localstack/venv), installed if needed
#  3. ruff + mypy + import contracts (lint-imports), only for a whole-suite run (no arguments); SQSW_LINT=0 skips, =1 forces
#     (.ci/run always sets SQSW_LINT=1 and fails unless "ruff + mypy ok, import contracts kept" is logged)
#  4. LocalStack started on a free 127.0.0.1 port; SQSW_TEST_ENDPOINT exported
#  5. .venv/bin/python -m pytest "$@"; a whole-suite run (no arguments) runs the tests in
#     SQSW_TEST_WORKERS processes (default 2, pytest-xdist): most tests wait on SQS
#     timers (visibility, backoff, LocalStack's 1 s tick), so two at once halve the time
# LocalStack is always stopped on exit (also on failure, Ctrl-C, SIGTERM); the exit
# code is pytest's (or 1 if pytest passed but ruff/mypy failed).
#
# Set SQSW_TEST_ENDPOINT yourself to reuse a running server (nothing is started then),
# e.g. endpoint=$(python3 scripts/localstack.py start); ...; python3 scripts/localstack.py stop
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${SQSW_PYTHON:-python3}
log() { echo "[test.sh] $*" >&2; }

bash scripts/setup-dev.sh

state=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$state" ]; then
        "$PY" scripts/localstack.py stop --state "$state" --quiet || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- Chromium for the dashboard's browser tests (tests/test_dashboard_browser.py):
# Debian's chromium package, installed once where missing (as root; Playwright's own
# browser downloads need the internet, which CI does not have).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        log "installing chromium (Debian package) for the dashboard's browser tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q chromium >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    else
        log "chromium is missing and this is not root: the dashboard's browser tests will fail (apt-get install chromium)"
    fi
fi

# ---- lint (whole-suite runs only)
lint_rc=0
if [ "${SQSW_LINT:-auto}" = 1 ] || { [ "${SQSW_LINT:-auto}" = auto ] && [ $# -eq 0 ]; }; then
    t0=$SECONDS
    .venv/bin/ruff check . || lint_rc=1
    .venv/bin/mypy || lint_rc=1
    # The core's layers and "the core never imports a plugin" ([tool.importlinter]).
    .venv/bin/lint-imports --no-cache || lint_rc=1
    if [ "$lint_rc" -ne 0 ]; then
        log "ruff/mypy/import contracts FAILED ($((SECONDS - t0)) s); running the tests anyway"
    else
        log "ruff + mypy ok, import contracts kept ($((SECONDS - t0)) s)"
    fi
else
    log "ruff + mypy skipped (SQSW_LINT=${SQSW_LINT:-auto}, pytest arguments: $#)"
fi

# ---- LocalStack
if [ -n "${SQSW_TEST_ENDPOINT:-}" ]; then
    log "using SQSW_TEST_ENDPOINT=$SQSW_TEST_ENDPOINT (not starting LocalStack)"
else
    "$PY" scripts/localstack.py install
    state=.localstack/test-run-$$.json
    # start prints the endpoint on stdout and "ready at ... in N s" on stderr
    SQSW_TEST_ENDPOINT=$("$PY" scripts/localstack.py start --state "$state")
    export SQSW_TEST_ENDPOINT
fi

# ---- tests
rc=0
if [ $# -eq 0 ] && [ "${SQSW_TEST_WORKERS:-2}" != 1 ]; then
    set -- -n "${SQSW_TEST_WORKERS:-2}"
fi
.venv/bin/python -m pytest "$@" || rc=$?
if [ "$rc" -eq 0 ] && [ "$lint_rc" -ne 0 ]; then
    log "tests passed but ruff/mypy failed"
    rc=1
fi
exit "$rc"
