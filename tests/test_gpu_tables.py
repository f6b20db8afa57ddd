"""benchmarks/gpu_tables.py on outputs shaped as the benchmarks print them on a GPU: the
tables and the advice a GPU session will read, checked before any GPU runs them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_tables

FIRST = ["2026-12-06", "H100", "`bench.py --device cuda`"]
CONCURRENT = """device cuda, threads 1, ConvNet-3 width 128, (3, 32, 32), 5 LRs, 50 epochs
 ipc  sequential s  streams s  stacked s  streams x  stacked x  max |Δacc| streams  stacked
  10          4.00       2.00       1.00      {x10}x      4.00x              0.0010   0.0020
     CPU seconds of this process: 4.00, 2.00, 1.00 (2.00x, 4.00x)
  50          8.00       6.00       nan      {x50}x        nanx              0.0000   nan
"""
PRECISION = """## layout: ConvNet-3 (width 128) step on 256 3x32x32 images, device cuda
| precision | contiguous ms | channels_last ms | channels_last / contiguous |
|---|---|---|---|
| fp32 | 2.0 | 2.0 | 1.00x |
| bf16 | 2.0 | 1.6 | 0.80x |

## eval: ConvNet-3 (width 128) on 4,000 3x32x32 images, device cuda
| precision | batch 250 img/s | batch 1000 img/s | batch 2000 img/s |
|---|---|---|---|
| fp32 | 100000 | 90000 | 80000 |
| fp16 | 100000 | 150000 | 200000 |
"""


def concurrent(x10: str, x50: str) -> str:
    return CONCURRENT.format(x10=x10, x50=x50)


def test_the_concurrent_table_has_the_readme_columns_and_one_row_per_ipc():
    lines = gpu_tables.concurrent(concurrent("2.00", "1.33"), FIRST)
    assert lines[0].startswith("| date | machine | command | IPC | sequential | streams |")
    assert lines[2] == (
        "| 2026-12-06 | H100 | `bench.py --device cuda` | 10 | 4.00 s | 2.00 s | 1.00 s "
        "| 2.00× | 4.00× | 0.0010 / 0.0020 |"
    )
    assert lines[3].split(" | ")[3:6] == ["50", "8.00 s", "6.00 s"]
    assert len(lines) == 4


def test_the_rule_for_auto_follows_the_streams_gain_at_every_ipc():
    def rule(x10, x50):
        outputs = {"concurrent": concurrent(x10, x50), "precision": ""}
        return gpu_tables.advice(outputs, "cuda")[0]

    assert "keep together on the GPU" in rule("2.00", "1.33")
    assert "change auto to one after the other" in rule("0.90", "0.80")
    assert "no clear gain" in rule("1.30", "0.90")


def test_channels_last_and_the_eval_batch_are_advised_per_precision():
    advice = gpu_tables.advice({"precision": PRECISION}, "cuda")
    assert "channels_last (cuda, fp32): 1.00× contiguous: keep out of" in advice[1]
    assert "channels_last (cuda, bf16): 0.80× contiguous: add to" in advice[2]
    assert "eval batch (cuda, fp32): best 250" in advice[3] and "keep 1,000" in advice[3]
    assert "precision.EVAL_BATCH[('cuda', 'fp16')] = 2000" in advice[4]


def test_pytest_outcomes_become_one_row_per_test():
    out = (
        "PASSED tests/test_cuda.py::test_two_slot_jobs\n"
        "SKIPPED [1] tests/test_precision.py:85: needs a CUDA device\n"
        "FAILED tests/test_cuda.py::test_torchrun - AssertionError\n"
    )
    rows = gpu_tables.pytest_outcomes(out, FIRST)[2:]
    assert rows == [
        "| tests/test_cuda.py::test_two_slot_jobs | PASSED |",
        "| tests/test_precision.py:85: needs a CUDA device | SKIPPED |",
        "| tests/test_cuda.py::test_torchrun - AssertionError | FAILED |",
    ]
