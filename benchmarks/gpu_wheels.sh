#!/bin/sh
# Saves Snakemake and what it needs as wheels in .whl/ (git-ignored through
# .git/info/exclude), for a GPU machine whose image has torch but no Snakemake and cannot
# reach a package index: carry .whl there and benchmarks/gpu_check.sh installs them.
# For that image's Python 3.12 on x86-64 Linux (PYVER / PLATFORM to change).
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PYVER="${PYVER:-3.12}"
version="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("snakemake"))')"
mkdir -p .whl
exclude="$(git rev-parse --git-path info/exclude)"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
# connection_pool 0.0.3 is published as a source archive only: build its (pure) wheel here
"$PYTHON" -m pip wheel -q --no-deps -w .whl connection_pool==0.0.3
"$PYTHON" -m pip download -q --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform "${PLATFORM:-manylinux_2_28_x86_64}" \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    --find-links .whl -d .whl "snakemake==$version"
du -sh .whl
