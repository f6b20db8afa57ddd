"""How many images a syn, rdm or reference set holds, known while the DAG is planned.

The planner uses it to decide which sets are big enough to train under torchrun
(`resources.ddp_min_images`). It reads no set and imports no torch: every such set holds
exactly `ipc` images of every class of its dataset (the rdm and reference sets are drawn
that way, and syn_set refuses a user's set whose class counts differ from its method's
ipc), so its size is ipc x the dataset's class count. The class count comes from the
source's fixed format, or, for an ImageFolder tree, from its `classes` list or the class
folders under `{root}/train`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ddrank_steps.planning.reads import Reads

# Sets of at least this many images train with DistributedDataParallel on
# resources.real_processes processes (schema default of resources.ddp_min_images). A run
# under torchrun pays seconds of start-up (spawning the processes, joining the group,
# broadcasting the model) and an all-reduce per step; on the tiny sets that dataset
# distillation evaluates (CIFAR-10 IPC 50 is 500 images, 2 steps an epoch at batch 256)
# that is all overhead. From about 10,000 images (40 steps an epoch) each epoch is real
# work: ImageNet-1K IPC 10 (10,000 images at 224 px) or IPC 50 (50,000) and TinyImageNet
# IPC 50 (10,000) qualify; CIFAR-100 IPC 50 (5,000) and every CIFAR-10 set do not.
DDP_MIN_IMAGES = 10_000

# Class counts of the sources whose format fixes them (TinyImageNet's and ImageNet-1K's
# loaders take the class folders they find; these are the official releases' counts).
FIXED_CLASS_COUNTS = {
    "digits": 10,
    "MNIST": 10,
    "FashionMNIST": 10,
    "SVHN": 10,
    "CIFAR10": 10,
    "CIFAR100": 100,
    "TinyImageNet": 200,
    "ImageNette": 10,
    "ImageWoof": 10,
    "ImageMeow": 10,
    "ImageSquawk": 10,
    "ImageFruit": 10,
    "ImageYellow": 10,
    "ImageNet1K": 1000,
}


def class_count(settings: dict, reads: Reads | None = None) -> int | None:
    """Classes of a dataset from its settings; None when they cannot be known without
    its files (an ImageFolder tree whose train/ folder is not there yet). The folder it
    lists is recorded in `reads`."""
    source = settings["source"]
    if source in FIXED_CLASS_COUNTS:
        return FIXED_CLASS_COUNTS[source]
    if source != "ImageFolder":
        raise ValueError(f"no class count for source {source}: add it to FIXED_CLASS_COUNTS")
    if settings.get("classes"):
        return len(settings["classes"])
    train_dir = (reads or Reads()).look(Path(settings.get("root") or "") / "train")
    if not train_dir.is_dir():
        return None  # the plan's layout check reports the missing tree
    # the loader's classes: the sorted subfolders of train/ (image_files.class_folders,
    # which imports torch)
    return sum(1 for entry in os.scandir(train_dir) if entry.is_dir())


def set_images(settings: dict, ipc: int, reads: Reads | None = None) -> int | None:
    """Images of a set of `ipc` images per class of the dataset; None when unknown."""
    classes = class_count(settings, reads)
    return None if classes is None else ipc * classes


def set_processes(resources: dict, images: int | None) -> int:
    """Processes a set's runs train on: resources.real_processes for a set of at least
    resources.ddp_min_images images, else one (also when its size is unknown)."""
    processes = resources.get("real_processes", 1)
    threshold = resources.get("ddp_min_images", DDP_MIN_IMAGES)
    if processes > 1 and images is not None and images >= threshold:
        return processes
    return 1
