"""Every GPU check of ddrank in one call: the CUDA tests, each benchmark's GPU row at a size
that fits about 8 minutes of an H100, and the P3 workflow case; one markdown table per
benchmark in benchmarks/README.md's format, and what the figures say about the defaults
that were guesses for the GPU.

    benchmarks/gpu_check.sh OUT                       # CUDA machine: the GPU rows
    benchmarks/gpu_check.sh OUT --device cpu --quick  # anywhere: the same steps, tiny

Steps run in the order of their value to a short lease (tests, P3, the LR grid, precision,
...); each gets what is left of `--budget-s`, and a step that would start with under 20 s
left is reported as skipped, not run. OUT receives `tables.md` (every table and the
advice), `summary.txt`, `logs.txt` (every step's whole stdout and stderr, one after the
other) and `raw/` (each step's log and, on a GPU machine, its `nvidia-smi` samples).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_tables
from gpu_sampler import Sampler

REPO = Path(__file__).resolve().parents[1]
MIN_STEP_S = 20
CUDA_TESTS = ["tests/test_cuda.py", "tests/test_concurrent_lrs.py", "tests/test_precision.py"]

# step -> (arguments on a GPU, about 8 minutes in all; with --quick), a script's name
# relative to benchmarks/
STEPS = {
    "cuda-tests": (
        f"-m pytest -m cuda -q -rA -p no:cacheprovider {' '.join(CUDA_TESTS)}",
        f"-m pytest -m cuda -q -rA -p no:cacheprovider {' '.join(CUDA_TESTS)}",
    ),
    "p3": (
        "bench_p3.py --epochs 300 --interval 50 --train 200 --real-epochs 2",
        "bench_p3.py --rounds 1 --epochs 1 --interval 1 --width 16 --train 20 --test 10 "
        "--real-epochs 1 --ipc 2 --cores 2 --variants 1:auto",
    ),
    "concurrent": (
        "bench_concurrent.py --ipc 10 50 --epochs 50 --repeats 2",
        "bench_concurrent.py --ipc 10 --epochs 1 --repeats 1 --width 16 --test 100",
    ),
    "precision": (
        "bench_precision.py --seeds 3 --cifar-epochs 50",
        "bench_precision.py --protocols cifar --seeds 1 --cifar-epochs 1 --steps 1 "
        "--eval-batches 250 1000 --eval-images 200 --layout-batch 32",
    ),
    "engine": (
        "bench_engine.py --ipc 10 50 --epochs 50 --repeats 3",
        "bench_engine.py --ipc 10 --epochs 2 --repeats 1",
    ),
    "reference-loop": (
        "bench_reference_loop.py --ipc 10 --epochs 50 --interval 10 --test 10000 --workers 4",
        "bench_reference_loop.py --ipc 10 --epochs 2 --interval 1 --test 100 --workers 0 "
        "--width 16",
    ),
    "transforms": (
        "bench_transforms.py --batch 256",
        "bench_transforms.py --batch 32 --batches 2 --repeats 1",
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for tables.md, summary.txt and the logs")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the steps run")
    ap.add_argument("--budget-s", type=float, default=480.0, help="seconds for all steps")
    ap.add_argument("--only", nargs="+", choices=list(STEPS), help="run these steps only")
    ap.add_argument("--machine", help="the README's machine cell (default: from the device)")
    args = ap.parse_args(argv)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def machine(args) -> str:
    if args.machine:
        return args.machine
    if args.device == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(0)} × {torch.cuda.device_count()}"
    return f"{os.cpu_count()}-core CPU ({platform.machine()}), 1 thread"


def environment(out: Path) -> dict:
    """The steps' environment: this checkout first on PYTHONPATH, output unbuffered, and a
    failing `scontrol` first on PATH where one is installed (a SLURM client with no
    controller makes every Snakemake start wait about 9 s; nothing here uses SLURM)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    if shutil.which("scontrol"):
        stub = Path(tempfile.mkdtemp(prefix="no-scontrol-"))
        (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
        (stub / "scontrol").chmod(0o755)
        env["PATH"] = f"{stub}{os.pathsep}{env['PATH']}"
    return env


def command(name: str, args) -> list[str]:
    full, quick = STEPS[name]
    argv = (quick if args.quick else full).split()
    if name != "cuda-tests":
        argv = [f"benchmarks/{argv[0]}", *argv[1:], "--device", args.device]
    return [sys.executable, *argv]


def run_step(name: str, args, env: dict, left: float) -> tuple[str, str, float]:
    """(status, stdout, seconds) of one step, its log written to OUT/<name>.log."""
    cmd = command(name, args)
    log = args.out / "raw" / f"{name}.log"
    start = time.perf_counter()
    with Sampler(args.out / "raw" / f"{name}.smi.csv") as sampler:
        try:
            proc = subprocess.run(
                cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=left
            )
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            status = f"stopped after {left:.0f} s (budget)"
            stdout = _text(exc.stdout)
            stderr = _text(exc.stderr)
    seconds = time.perf_counter() - start
    status += f", GPU {sampler.summary()}"
    log.write_text(
        f"$ {' '.join(cmd)}\n{status}, {seconds:.1f} s\n\n{stdout}\n--- stderr\n{stderr}"
    )
    return status, stdout, seconds


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    (args.out / "raw").mkdir(parents=True, exist_ok=True)
    env = environment(args.out)
    today = datetime.date.today().isoformat()
    where = machine(args)
    deadline = time.monotonic() + args.budget_s
    tables, outputs, summary = [], {}, []
    for name in args.only or list(STEPS):
        left = deadline - time.monotonic()
        if left < MIN_STEP_S:
            summary.append(f"{name}: skipped, {left:.0f} s of the budget left")
            continue
        status, stdout, seconds = run_step(name, args, env, left)
        outputs[name] = stdout
        summary.append(f"{name}: {status}, {seconds:.1f} s")
        shown = " ".join(command(name, args)[1:]).replace("benchmarks/", "", 1)
        first = [today, where, f"`{shown}`"]
        tables += [f"### {name}", "", *gpu_tables.READERS[name](stdout, first), ""]
        print(f"{name}: {status}, {seconds:.1f} s", flush=True)
    advice = gpu_tables.advice(outputs, args.device)
    if args.quick:  # tiny sizes check that the steps run; their figures decide nothing
        advice = ["--quick: figures of tiny sizes; do not change a default from them.", *advice]
    text = "\n".join([*tables, "### defaults", "", *(f"- {a}" for a in advice), ""])
    (args.out / "tables.md").write_text(text)
    (args.out / "summary.txt").write_text("\n".join(summary) + "\n")
    logs = [f"===== {p.stem}\n{p.read_text()}" for p in sorted((args.out / "raw").glob("*.log"))]
    (args.out / "logs.txt").write_text("\n".join(logs))
    print(f"\n{text}\n" + "\n".join(summary))
    print(f"tables and logs: {args.out}")
    return 0 if all(": ok" in line for line in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
