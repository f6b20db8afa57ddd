"""GPU utilisation over a stretch of wall time, sampled with `nvidia-smi`.

`nvidia-smi --query-gpu ... -lms N` prints one line per GPU every N ms until stopped; the
sampler keeps it running beside the measured work and summarises its lines afterwards.
Without `nvidia-smi` (a CPU machine) it samples nothing and says so, so the callers need
no branch of their own.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

QUERY = "utilization.gpu,memory.used"


class Sampler:
    """`with Sampler(log) as s: ...`, then `s.summary()`: mean and peak utilisation."""

    def __init__(self, log: Path, interval_ms: int = 500):
        self.log = log
        self.interval_ms = interval_ms
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Sampler:
        smi = shutil.which("nvidia-smi")
        if smi is not None:
            cmd = [smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"]
            cmd.append(f"-lms={self.interval_ms}")
            with open(self.log, "w") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def samples(self) -> list[tuple[float, float]]:
        """(utilisation %, memory MiB) per sample and GPU; malformed lines skipped."""
        if self.proc is None or not self.log.exists():
            return []
        rows = []
        for line in self.log.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            try:
                rows.append((float(parts[0]), float(parts[1])))
            except (IndexError, ValueError):
                continue
        return rows

    def summary(self) -> str:
        rows = self.samples()
        if self.proc is None:
            return "not sampled (no nvidia-smi)"
        if not rows:
            return "no samples"
        util = [u for u, _ in rows]
        memory = max(m for _, m in rows)
        mean = sum(util) / len(util)
        return f"mean {mean:.0f} %, peak {max(util):.0f} %, {memory:.0f} MiB peak"
