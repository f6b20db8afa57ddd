"""Benchmark P3: an LRS-hard score of a CIFAR-10 IPC-10 set as a workflow run, several
training jobs sharing each GPU, with the real-hard term already cached.

What a user waits for when they score one more method: its syn-hard and rdm-any runs
(`num_eval` rounds each, the 5-LR grid in every job), the real-hard runs being shared and
so trained once before. The script writes CIFAR-shaped data in torchvision's python-pickle
layout (`cifar-10-batches-py/`, a pattern per class under noise, so the LRs reach
different accuracies), a config of the reference's protocol (ConvNet-3, DSA, SGD, the LR
grid, `select: best`) at a chosen number of epochs, trains the real-hard runs first
(`snakemake --until train_real`), then times `snakemake --until leaderboard` once per
variant (`jobs_per_gpu` × `concurrent_lrs`; `--forcerun train` between variants, as
neither moves a cache key), sampling GPU utilisation with `nvidia-smi` while it runs.

Run: `python benchmarks/bench_p3.py --device cuda` (defaults: 5 rounds, 300 epochs, 5,000
train and 10,000 test images, variants 4:auto and 4:false on 16 cores).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_sampler import Sampler

REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
DSA = {"scale": 1.2, "rotate": 15.0, "flip": 0.5, "brightness": 1.0, "saturation": 2.0}
DSA |= {"contrast": 0.5, "crop": 0.125, "cutout": 0.5}


def write_cifar(root: Path, train_per_class: int, test_per_class: int) -> None:
    """CIFAR-10's on-disk format: 5 train batches, a test batch, the names' meta file."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    patterns = rng.integers(40, 216, size=(CLASSES, 3072))

    def batch(per_class: int) -> dict:
        labels = np.tile(np.arange(CLASSES), per_class)
        rng.shuffle(labels)
        noise = rng.normal(0, 48, size=(len(labels), 3072))
        data = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
        return {b"batch_label": b"fake", b"labels": labels.tolist(), b"data": data}

    per_batch, extra = divmod(train_per_class, 5)
    for i in range(1, 6):
        dump(folder / f"data_batch_{i}", batch(per_batch + (1 if i <= extra else 0)))
    dump(folder / "test_batch", batch(test_per_class))
    dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})


def dump(path: Path, blob: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(blob, f, protocol=2)  # bytes keys, as the real (Python 2) files


def config(args, data: Path, jobs_per_gpu: int, concurrent: str) -> dict:
    """The reference's LRS-hard protocol at `args.epochs` epochs; a short real-hard recipe
    (it is cached before the timing, so only its existence matters)."""
    protocol = {"model": "ConvNet-3", "augmentation": "dsa", "aug_params": DSA}
    protocol |= {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0005}
    protocol |= {"scheduler": "step", "step_size": max(1, args.epochs // 2)}
    protocol |= {"epochs": args.epochs, "batch_size": 128, "select": "best"}
    protocol |= {"lr_grid": [0.001, 0.005, 0.01, 0.05, 0.1], "test_interval": args.interval}
    if args.width:
        protocol["model_options"] = {"width": args.width}
    real = {"lr": 0.01, "epochs": args.real_epochs, "batch_size": 256, "scheduler": "none"}
    real |= {"augmentation": "none", "test_interval": args.real_epochs}
    on_gpu = args.device == "cuda"
    resources = {"train_gpus": 1 if on_gpu else 0, "jobs_per_gpu": jobs_per_gpu}
    resources["concurrent_lrs"] = {"auto": "auto", "true": True, "false": False}[concurrent]
    method = {"dataset": "cifar", "ipc": args.ipc, "images": "reference:random"}
    method["metrics"] = {"lrs_hard": {"protocol": "p3-dsa"}}
    return {
        "seed": 0,
        "num_eval": args.rounds,
        "device": args.device,
        "datasets": {"cifar": {"source": "CIFAR10", "root": str(data)}},
        "protocols": {"p3-dsa": protocol},
        "real_protocols": {"cifar-ConvNet-3": real},
        "resources": resources,
        "methods": {"p3": method},
    }


def snakemake(work: Path, args, slots: int, *extra: str) -> tuple[float, str]:
    """Wall seconds and the log of one Snakemake run in `work`; raises on failure."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(work), "--configfile", str(work / "config.yaml")]
    cmd += ["--cores", str(args.cores), *extra]
    if args.device == "cuda":
        cmd += ["--resources", f"gpu={slots}"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(extra)} failed ({proc.returncode}):\n{log[-4000:]}")
    return wall, log


def variant(work: Path, args, spec: str, first: bool) -> None:
    """Time one `jobs_per_gpu:concurrent_lrs` variant and print its table row."""
    slots, concurrent = spec.split(":")
    (work / "config.yaml").write_text(
        yaml.safe_dump(config(args, args.data, int(slots), concurrent))
    )
    force = () if first else ("--forcerun", "train")
    with Sampler(work / f"nvidia-smi-{slots}-{concurrent}.csv") as sampler:
        wall, log = snakemake(work, args, int(slots), "--until", "leaderboard", *force)
    jobs = len(re.findall(r"^(?:local)?rule train:", log, re.M))
    print(
        f"| {args.device} | {args.ipc} | {args.rounds} | {args.epochs} | {slots} | {concurrent} "
        f"| {jobs} | {wall:.1f} s | {sampler.summary()} |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5, help="num_eval")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--interval", type=int, default=50, help="test_interval")
    ap.add_argument("--width", type=int, default=0, help="ConvNet-3 width (0: its 128)")
    ap.add_argument("--train", type=int, default=500, help="train images per class")
    ap.add_argument("--test", type=int, default=1000, help="test images per class")
    ap.add_argument("--real-epochs", type=int, default=5, help="of the cached real-hard runs")
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument(
        "--variants", nargs="+", default=["4:auto", "4:false"], help="jobs_per_gpu:concurrent_lrs"
    )
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-p3-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        args.data = work / "data"
        write_cifar(args.data, args.train, args.test)
        slots = args.variants[0].split(":")[0]
        first = config(args, args.data, int(slots), args.variants[0].split(":")[1])
        (work / "config.yaml").write_text(yaml.safe_dump(first))
        prime, _ = snakemake(work, args, int(slots), "--until", "train_real")
        print(f"P3 on {args.device}: real-hard runs trained first in {prime:.1f} s (not timed)")
        print(
            "| device | IPC | rounds | epochs | jobs_per_gpu | concurrent_lrs | train jobs "
            "| wall | GPU utilisation |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for i, spec in enumerate(args.variants):
            variant(work, args, spec, first=i == 0)


if __name__ == "__main__":
    main()
