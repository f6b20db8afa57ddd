"""Material several test modules share: one tiny training protocol to vary per test, and a
tiny image-folder dataset with the train stage run on it."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from format_writers import write_image

from ddrank_steps.data import dataset_store
from ddrank_steps.planning.keys import run_protocol
from ddrank_steps.stages import train

# A 2-block ConvNet of width 4, a few epochs: trains in milliseconds on 8x8 toy images.
TINY_PROTOCOL = {
    "model": "ConvNet-2",
    "model_options": {"width": 4},
    "labels": "hard",
    "augmentation": "none",
    "aug_params": {},
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "scheduler": "step",
    "step_size": None,
    "gamma": 0.1,
    "epochs": 3,
    "batch_size": 8,
    "test_interval": 2,
    "select": "best",
    "lr": None,
    "lr_grid": [0.01, 0.1],
}


def tiny_config(**changes) -> dict:
    """The protocol as a config gives it (before the plan resolves the LR)."""
    return {**copy.deepcopy(TINY_PROTOCOL), **changes}


def tiny_protocol(lr_source: str = "grid", labels: dict | None = None, **changes) -> dict:
    """The canonical run protocol the train stage receives."""
    return run_protocol(tiny_config(**changes), lr_source, labels)


# --- a tiny ImageFolder tree, prepared cached and streamed (the `tree`/`both` fixtures) -------

TREE_CLASSES = ("c0", "c1", "c2")
# the same statistics for both storages, so only the storage differs
TREE_MEAN, TREE_STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def write_tree(root: Path) -> Path:
    """Noisy, class-coloured 12x10 PNGs (learnable, not trivial): 8 train, 4 test a class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for k, name in enumerate(TREE_CLASSES):
            for j in range(n):
                array = rng.integers(0, 120, size=(10, 12, 3), dtype=np.uint8)
                array[..., k] += 120
                write_image(root / split / name / f"{j}.png", array)
    return root


def prepared(tree: Path, out: Path, limit_gb: float) -> tuple[Path, Path, dict]:
    """The tree prepared at 8x8 into `out`: cached under `limit_gb`, else streamed."""
    out.mkdir(parents=True, exist_ok=True)
    data, meta = out / "data.pt", out / "meta.json"
    settings = {
        "source": "ImageFolder",
        "root": str(tree),
        "image_size": 8,
        "cache_limit_gb": limit_gb,
        "mean": TREE_MEAN,
        "std": TREE_STD,
    }
    info = dataset_store.prepare("tree", settings, str(data), str(meta), workers=0)
    return data, meta, info


def run_train_stage(data: Path, meta: Path, out: Path, protocol: dict, workers: int) -> dict:
    """The train stage on the real train split (seed 3, CPU); its run file, read back."""
    args = train.parser().parse_args(
        [
            *("--real", "--set", str(data), "--data", str(data), "--meta", str(meta)),
            *("--protocol", json.dumps(protocol), "--seed", "3", "--device", "cpu"),
            *("--workers", str(workers), "--out", str(out)),
        ]
    )
    train.main(args)
    return json.loads(out.read_text())


# --- the workflow run by snakemake in a folder of its own --------------------------------------

SNAKEFILE = Path(__file__).resolve().parents[1] / "workflow" / "Snakefile"


def write_config(workdir: Path, config: dict) -> Path:
    """`config` as workdir/config.yaml, the file `snakemake_command` passes by default."""
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_command(workdir: Path, *args: str, configfile: Path | None = None) -> list[str]:
    """The workflow run in `workdir` on 2 cores with workdir/config.yaml (or `configfile`)."""
    return [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)),
        *("--directory", str(workdir)),
        *("--configfile", str(configfile or workdir / "config.yaml")),
        *("--cores", "2", *args),
    ]


def dry_run(workdir: Path, config: dict) -> str:
    """`snakemake --dry-run` of the workflow on `config` (written to workdir/config.yaml);
    its output, after asserting that it succeeded."""
    write_config(workdir, config)
    cmd = snakemake_command(workdir, "--dry-run")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    return text


def job_counts(dry_run_text: str) -> dict[str, int]:
    """Rule -> job count from a `snakemake --dry-run`'s 'Job stats' table (empty when there
    is nothing to do)."""
    if "Job stats:" not in dry_run_text:
        assert "Nothing to be done" in dry_run_text, dry_run_text[-3000:]
        return {}
    counts = {}
    for line in dry_run_text.split("Job stats:", 1)[1].splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def toy_split(n: int, seed: int, shape: tuple[int, int, int] = (1, 8, 8)):
    """A learnable 2-class engine Split: class 0 is bright on the left half, class 1 on
    the right half, plus noise."""
    import torch

    from ddrank_steps.training.engine import Split

    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = 0.3 * torch.randn(n, *shape, generator=g)
    half = shape[-1] // 2
    images[labels == 0, :, :, :half] += 1.0
    images[labels == 1, :, :, half:] += 1.0
    return Split(images, labels)


def lrs_hard_score(terms: dict, **extra) -> dict:
    """A one-round LRS-hard score record with every field the leaderboard reads, around
    `terms` (real-hard, syn-hard, syn-any, rdm-any); `extra` adds top-level fields."""
    summary = {q: {"mean": 1.0, "std": 0.0} for q in ("lrs", "hlr", "ior")}
    summary["terms"] = {t: {"mean": 0.5, "std": 0.0} for t in terms}
    return {
        "method": "m",
        "metric": "lrs_hard",
        "dataset": "d",
        "ipc": 1,
        "settings": {"weight": 0.5},
        "protocol_name": "p",
        "protocols": {"syn-any": {"select": "best"}},
        "seeds": [0],
        "rounds": [{"terms": terms, "lrs": 20.0, "hlr": 0.4, "ior": 0.1}],
        "summary": summary,
        **extra,
    }


def accuracy_spec(rounds: list, dataset: str = "d", ipc: int = 1) -> dict:
    """The score stage's spec for an accuracy score over `rounds` of syn-any run files."""
    return {
        "method": "m",
        "metric": "accuracy",
        "dataset": dataset,
        "ipc": ipc,
        "settings": {"protocol": "p"},
        "protocol_name": "p",
        "protocols": {"syn-any": {"select": "best"}},
        "rounds": rounds,
    }


def digits_meta(mean: list[float], std: list[float]):
    """The DatasetMeta of the digits (8×8, one channel, raw values 0-16) with this mean/std."""
    from ddrank_steps.data.training_inputs import DatasetMeta

    return DatasetMeta(
        name="digits",
        num_classes=10,
        channels=1,
        height=8,
        width=8,
        mean=mean,
        std=std,
        max_value=16.0,
        classes=[str(c) for c in range(10)],
    )


def torchrun_protocol(batch_size: int) -> dict:
    """The small fixed-LR ConvNet-3 real run the torchrun tests train (6 epochs, width 16);
    `batch_size` is the global batch, split across the processes."""
    return tiny_protocol(
        "fixed",
        model="ConvNet-3",
        model_options={"width": 16},
        scheduler="none",
        epochs=6,
        batch_size=batch_size,
        lr=0.05,
    )
