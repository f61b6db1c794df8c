#!/usr/bin/env bash
# Create .venv and install sqsw (core + every plugin, editable) and the dev tools.
#
# Idempotent and fast when already done: a stamp (hash of every pyproject.toml and
# requirements-dev.txt) skips pip when nothing changed. New plugins (any
# plugins/*/pyproject.toml) are picked up automatically.
#   SQSW_SETUP_FORCE=1 bash scripts/setup-dev.sh     # reinstall anyway
#   SQSW_SETUP_VERBOSE=1 bash scripts/setup-dev.sh   # show pip's warnings too
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${SQSW_PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.sqsw-setup-stamp

log() { echo "[setup-dev] $*" >&2; }

# pip, quiet on success; on failure everything it said. The machine's pip config
# lists local indexes that lack most packages: drop those harmless warnings.
pip_quiet() {
    local out rc=0
    out=$("$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" </dev/null 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" >&2
        log "pip install failed (exit $rc): pip install $*"
        exit "$rc"
    fi
    if [ "${SQSW_SETUP_VERBOSE:-0}" = 1 ]; then
        printf '%s\n' "$out" >&2
    else
        local n
        n=$(printf '%s\n' "$out" | grep -c -v -e "^WARNING: Location '.*' is ignored" -e '^$' || true)
        [ "$n" -gt 0 ] && log "($n lines of pip/build warnings hidden; SQSW_SETUP_VERBOSE=1 to see them)"
    fi
    return 0
}

# A venv whose interpreter no longer runs (python upgraded or moved) is rebuilt.
if [ -e "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "$VENV is broken: recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $("$PY" --version 2>&1)"
    "$PY" -m venv "$VENV"
fi

plugins=()
for f in plugins/*/pyproject.toml; do
    [ -e "$f" ] && plugins+=("$(dirname "$f")")
done

stamp=$(
    {
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
        for f in pyproject.toml plugins/*/pyproject.toml requirements-dev.txt; do
            [ -e "$f" ] && { echo "== $f"; cat "$f"; }
        done
    } | sha256sum | cut -d' ' -f1
)
if [ "${SQSW_SETUP_FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$stamp" ]; then
    exit 0
fi

start=$SECONDS
log "installing dev tools and sqsw (core + ${#plugins[@]} plugins: ${plugins[*]##*/}) into $VENV"
pip_quiet -r requirements-dev.txt
editables=(-e .)
for p in "${plugins[@]}"; do editables+=(-e "$p"); done
# No build isolation: setuptools>=69 is already in the venv (requirements-dev.txt), which
# saves a temporary build env per package.
pip_quiet --no-build-isolation "${editables[@]}"
echo "$stamp" >"$STAMP"
log "done in $((SECONDS - start)) s"
