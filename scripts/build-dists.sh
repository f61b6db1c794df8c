#!/usr/bin/env bash
# Build the wheel and sdist of every distribution (sqsw-core + plugins/*) into dist/.
#   bash scripts/build-dists.sh [OUTDIR]        # default: dist/
#   SQSW_BUILD_ISOLATION=0 bash scripts/build-dists.sh   # reuse .venv's setuptools (faster)
# Needs `build` (in requirements-dev.txt): run scripts/setup-dev.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=$(realpath -m "${1:-dist}")
PY=${SQSW_BUILD_PYTHON:-.venv/bin/python}
args=(--outdir "$out")
[ "${SQSW_BUILD_ISOLATION:-1}" = 0 ] && args+=(--no-isolation)

mkdir -p "$out"
for project in . plugins/*/; do
    [ -e "$project/pyproject.toml" ] || continue
    echo "[build-dists] $project" >&2
    # build leaves build/ and *.egg-info behind; keep the tree as it was.
    if ! log=$("$PY" -m build "${args[@]}" "$project" 2>&1); then
        printf '%s\n' "$log" >&2
        echo "[build-dists] FAILED: $project" >&2
        exit 1
    fi
    rm -rf "$project/build"
done
ls -1 "$out"
