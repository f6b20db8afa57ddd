#!/bin/sh
# Every GPU check of ddrank in one call (benchmarks/README.md, "GPU check"):
#   benchmarks/gpu_check.sh OUT [--device cpu --quick] [--budget-s S] [--only STEP ...]
# Python: $PYTHON, else .venv/bin/python, else python3. Where Snakemake is missing (a GPU
# image with torch but no venv of this project), wheels that benchmarks/gpu_wheels.sh
# saved in .whl/ are installed into a folder of their own first.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import snakemake" 2>/dev/null; then
    if [ ! -d .whl ]; then
        echo "gpu_check: $PYTHON has no snakemake; run benchmarks/gpu_wheels.sh first" >&2
        echo "(it saves wheels in .whl/; carry .whl to the GPU machine)" >&2
        exit 2
    fi
    site="${TMPDIR:-/tmp}/ddrank-gpu-check-site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$site" .whl/*.whl
    PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    PATH="$site/bin:$PATH"
    export PYTHONPATH PATH
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
