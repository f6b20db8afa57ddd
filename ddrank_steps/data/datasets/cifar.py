"""CIFAR-10 and CIFAR-100 from torchvision's on-disk python-pickle format.

Layouts (exactly what `torchvision.datasets.CIFAR10/100(root, download=True)` leaves):

    {root}/cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch, batches.meta
    {root}/cifar-100-python/train, test, meta

Each batch is a pickled dict with bytes keys: b"data" is a uint8 array (N, 3072) of
row-major RGB planes (1024 R, then 1024 G, then 1024 B values), so it reshapes to
(N, 3, 32, 32) with no transpose; labels are b"labels" (CIFAR-10) or b"fine_labels"
(CIFAR-100). `root` may name the folder that holds `cifar-10-batches-py` (as
torchvision wants it) or that folder itself.

We read the pickles ourselves rather than through torchvision's dataset classes: no
per-image PIL round trip, the pixels stay lossless uint8 in channel-first order, and
a missing or broken file gives an error that names it and the layout we expect.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ddrank_steps.data.datasets import Facts, PixelSplit, RawDataset, register_source
from ddrank_steps.data.datasets.layout_checks import (
    loader_root,
    plan_root,
    require_file,
    root_fix,
)
from ddrank_steps.errors import InputError

log = logging.getLogger("ddrank.datasets.cifar")

IMAGE_SHAPE = (3, 32, 32)
MAX_VALUE = 255.0
ROW_LENGTH = 3 * 32 * 32


@dataclass(frozen=True)
class _Format:
    source: str  # the config's source name
    title: str  # for messages
    folder: str  # torchvision's base folder under root
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    labels_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_download_root: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file, self.meta_file)

    def layout(self, root) -> str:
        first, last = self.files[0], self.files[-1]
        return (
            f"expected {root}/{self.folder}/{first} … {last} "
            f"(torchvision's {self.title} python format)"
        )

    @property
    def fix(self) -> str:
        return root_fix(self.source, f"the folder that holds {self.folder}/")

    @property
    def facts(self) -> Facts:
        """Its meta before preparing: the class names are read from its meta file."""
        return Facts(self.num_classes, IMAGE_SHAPE[0], MAX_VALUE, self.mean, self.std)


CIFAR10_FORMAT = _Format(
    source="CIFAR10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    labels_key="labels",
    names_key="label_names",
    num_classes=10,
    # The reference's (and DC's) CIFAR-10 statistics.
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
    default_download_root="data/cifar10",
)

CIFAR100_FORMAT = _Format(
    source="CIFAR100",
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    labels_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    # CIFAR-100's own statistics, as DC/DSA/MTT normalise it. The reference
    # (ddranking utils/data.py) wrongly normalises CIFAR-100 with CIFAR-10's
    # mean/std, so distilled sets saved in CIFAR-100's normalised space (the usual
    # convention) would be read against the wrong statistics there.
    mean=(0.5071, 0.4866, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    default_download_root="data/cifar100",
)


def _get(blob: dict, key: str):
    """A value under a str key or its bytes twin (pickles written by Python 2 have bytes keys)."""
    if key in blob:
        return blob[key]
    return blob.get(key.encode())


def _has(blob: dict, key: str) -> bool:
    return key in blob or key.encode() in blob


def _read_pickle(path: Path, fmt: _Format, root) -> dict:
    require_file(path, fmt.layout(root), fmt.fix)
    try:
        with open(path, "rb") as f:
            blob = pickle.load(f, encoding="bytes")
    except Exception as exc:  # any unreadable pickle is the same problem for the user
        raise InputError(
            path,
            "file",
            f"cannot be read as a pickle ({type(exc).__name__}: {exc}); {fmt.layout(root)}",
            f"download the dataset again (delete {path.parent} and set download: true)",
        ) from None
    if not isinstance(blob, dict):
        raise InputError(
            path,
            "file",
            f"holds a {type(blob).__name__}, not a dict; {fmt.layout(root)}",
            "download the dataset again",
        )
    return blob


def _read_batch(path: Path, fmt: _Format, root) -> tuple[np.ndarray, np.ndarray]:
    blob = _read_pickle(path, fmt, root)
    for key in ("data", fmt.labels_key):
        if not _has(blob, key):
            keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in blob)
            raise InputError(
                path,
                key,
                f"missing (keys: {keys}); {fmt.layout(root)}",
                "download the dataset again",
            )
    data = np.asarray(_get(blob, "data"))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_LENGTH:
        raise InputError(
            path,
            "data",
            f"is {data.dtype} {data.shape}; expected uint8 (N, {ROW_LENGTH}) rows of RGB planes",
            "download the dataset again",
        )
    try:
        labels = np.asarray(_get(blob, fmt.labels_key), dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputError(
            path, fmt.labels_key, f"is not a list of integers ({exc})", "download it again"
        ) from None
    if len(labels) != len(data):
        raise InputError(
            path,
            fmt.labels_key,
            f"has {len(labels)} labels for {len(data)} images",
            "download the dataset again",
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= fmt.num_classes):
        raise InputError(
            path,
            fmt.labels_key,
            f"labels span [{labels.min()}, {labels.max()}], outside [0, {fmt.num_classes})",
            "download the dataset again",
        )
    return data, labels


def _read_classes(path: Path, fmt: _Format, root) -> list[str]:
    blob = _read_pickle(path, fmt, root)
    names = _get(blob, fmt.names_key)
    if names is None:
        raise InputError(path, fmt.names_key, f"missing; {fmt.layout(root)}", "download again")
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    if len(names) != fmt.num_classes:
        raise InputError(
            path,
            fmt.names_key,
            f"has {len(names)} class names; {fmt.title} has {fmt.num_classes}",
            "download the dataset again",
        )
    return names


def _download(root: Path, fmt: _Format) -> None:
    import torchvision

    cls = getattr(torchvision.datasets, fmt.source)
    # torchvision wants the parent of its base folder
    parent = root.parent if root.name == fmt.folder else root
    log.info("downloading %s to %s (skipped when already there)", fmt.title, parent)
    for train in (True, False):
        cls(str(parent), train=train, download=True)


def find_folder(root: Path, fmt: _Format) -> Path:
    """The folder holding the batch files: `root/<base folder>` or `root` itself."""
    nested = root / fmt.folder
    if nested.is_dir():
        return nested
    if root.name == fmt.folder or any((root / name).is_file() for name in fmt.files):
        return root
    return nested  # absent: the first missing file names the layout we expected


def load_format(settings: dict, fmt: _Format) -> RawDataset:
    fetch = partial(_download, fmt=fmt)
    root = loader_root(settings, fmt.source, fmt.layout, fmt.fix, fmt.default_download_root, fetch)
    folder = find_folder(root, fmt)
    shown_root = folder.parent  # the layout message names the folder we looked in

    def read(files) -> PixelSplit:
        parts = [_read_batch(folder / name, fmt, shown_root) for name in files]
        data = np.concatenate([d for d, _ in parts]).reshape(-1, *IMAGE_SHAPE)
        labels = np.concatenate([lab for _, lab in parts])
        return PixelSplit(
            images=torch.from_numpy(np.ascontiguousarray(data)),
            labels=torch.from_numpy(labels),
        )

    train = read(fmt.train_files)
    test = read((fmt.test_file,))
    classes = _read_classes(folder / fmt.meta_file, fmt, shown_root)
    return RawDataset(
        name=fmt.source,
        classes=classes,
        max_value=MAX_VALUE,
        train=train,
        test=test,
        mean=list(fmt.mean),
        std=list(fmt.std),
        notes={"folder": str(folder), "format": f"torchvision {fmt.title} python pickles"},
    )


def check_layout(settings: dict, fmt: _Format) -> None:
    """At plan time: root and every batch file are there (download: true fetches them in
    the prepare_dataset job instead)."""
    root = plan_root(settings, fmt.source, fmt.layout, fmt.fix)
    if root is None:
        return
    folder = find_folder(root, fmt)
    for name in fmt.files:
        require_file(folder / name, fmt.layout(folder.parent), fmt.fix)


def register() -> None:
    for fmt in (CIFAR10_FORMAT, CIFAR100_FORMAT):
        register_source(
            fmt.source,
            partial(load_format, fmt=fmt),
            size=IMAGE_SHAPE[1],
            check_layout=partial(check_layout, fmt=fmt),
            facts=fmt.facts,
        )
