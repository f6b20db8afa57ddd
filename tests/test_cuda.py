"""The GPU lease and torchrun on the GPUs this machine has (the other CUDA tests are
beside the code they test, marked `cuda`). Every test here skips without CUDA; on a GPU
machine `benchmarks/gpu_check.py` runs them with `-m cuda`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import torchrun_protocol

REPO = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# A leased job: computes on the device it was given, records what it saw, then holds its
# slot until <out>.release appears, so two jobs provably overlap.
JOB = """
import os, sys, time, torch
out = sys.argv[1]
x = torch.ones(1024, 1024, device="cuda")
seen = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "count": torch.cuda.device_count(),
        "sum": float((x @ x).sum())}
open(out + ".tmp", "w").write(__import__("json").dumps(seen))
os.replace(out + ".tmp", out)
while not os.path.exists(out + ".release"):
    time.sleep(0.05)
"""


def _leased(tmp_path: Path, env: dict, name: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ddrank_steps.runtime.gpu_lease", "--gpus", "1"]
    cmd += ["--jobs-per-gpu", "2", "--poll", "0.05", "--timeout", "120", "--"]
    cmd += [sys.executable, str(tmp_path / "job.py"), str(tmp_path / name)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not start within {timeout} s"
        time.sleep(0.05)
    return json.loads(path.read_text())


def test_two_slot_jobs_share_a_real_gpu_and_compute_on_it(tmp_path):
    (tmp_path / "job.py").write_text(JOB)
    outside = ("CUDA_VISIBLE_DEVICES", "DDRANK_GPUS", "DDRANK_JOBS_PER_GPU", "SLURM_JOB_ID")
    env = {k: v for k, v in os.environ.items() if k not in outside}
    env["DDRANK_GPU_LEASE_DIR"] = str(tmp_path / "locks")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # the devices come from nvidia-smi -L, as on a user's workstation
    jobs = {name: _leased(tmp_path, env, name) for name in ("a", "b")}
    seen = {name: _wait_for(tmp_path / name) for name in jobs}  # both hold a slot at once
    for name, proc in jobs.items():
        (tmp_path / f"{name}.release").touch()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert seen["a"]["visible"] == seen["b"]["visible"] == "0"  # the busiest device first
    assert all(s["count"] == 1 and s["sum"] == 1024.0**3 for s in seen.values())


def test_torchrun_trains_real_hard_on_every_gpu_with_nccl(tmp_path):
    gpus = torch.cuda.device_count()
    data, meta = tmp_path / "data.pt", tmp_path / "meta.json"
    prepare = [sys.executable, "-m", "ddrank_steps.stages.prepare_dataset", "--name", "digits"]
    prepare += ["--settings", '{"source": "digits"}', "--data", str(data), "--meta", str(meta)]
    subprocess.run(prepare, check=True, cwd=REPO, capture_output=True)
    protocol = torchrun_protocol(128 * gpus)  # each process steps on 128 images
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1"]
    cmd += ["--nproc-per-node", str(gpus), "-m", "ddrank_steps.stages.train", "--real"]
    cmd += ["--set", str(data), "--data", str(data), "--meta", str(meta)]
    cmd += ["--protocol", json.dumps(protocol), "--seed", "0", "--device", "cuda"]
    cmd += ["--out", str(tmp_path / "run.json"), "--checkpoint", str(tmp_path / "run.pt")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["processes"] == gpus
    assert run["selected"]["acc"] > 0.3  # it learned (10 classes: chance is 0.1)
