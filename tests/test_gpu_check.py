"""benchmarks/gpu_check.sh, the one call a session with a GPU makes, kept from rotting: the
same steps on the CPU at a tiny size (`--device cpu --quick`), each with its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow  # the P3 step runs snakemake

BENCHMARKS = ("p3", "concurrent", "precision", "engine", "reference-loop", "transforms")


def test_the_gpu_check_runs_every_step_on_the_cpu_and_prints_its_tables(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = [str(REPO / "benchmarks" / "gpu_check.sh"), str(out), "--device", "cpu", "--quick"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (out / "summary.txt").read_text()
    assert summary.count(": ok") == len(BENCHMARKS) + 1, summary  # and the CUDA tests
    tables = (out / "tables.md").read_text()
    for name in BENCHMARKS:
        section = tables.split(f"### {name}\n", 1)[1].split("###", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| 20")]
        rows += [line for line in section.splitlines() if line.startswith("| cpu |")]
        rows += [line for line in section.splitlines() if line.startswith("| fp32 |")]
        assert rows, f"no data row for {name}:\n{section}"  # a row read from its output
        assert "?" not in "".join(rows), section
        assert (out / "raw" / f"{name}.log").is_file()
        assert f"===== {name}\n" in (out / "logs.txt").read_text()
    # the CUDA tests were collected and skipped here, each with its reason
    assert "SKIPPED" in tables.split("### cuda-tests", 1)[1].split("###", 1)[0]
    assert "- --quick: figures of tiny sizes" in tables
    assert "- concurrent_lrs auto:" in tables and "- channels_last (cpu, fp32)" in tables
    assert "- eval batch (cpu, bf16)" in tables
    assert "GPU not sampled (no nvidia-smi)" in summary or "GPU mean" in summary
