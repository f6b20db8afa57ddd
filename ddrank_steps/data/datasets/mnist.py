"""MNIST and FashionMNIST from the idx files, gzipped or not.

Layouts (the first that holds the train images wins):

    {root}/MNIST/raw/train-images-idx3-ubyte[.gz]   torchvision's, after download=True
    {root}/raw/…                                     root = torchvision's MNIST folder
    {root}/…                                         a bare folder of the four files

with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (FashionMNIST: the same names, under FashionMNIST/raw).

An idx file is a 4-byte magic (two zero bytes, a type code, 0x08 = unsigned byte, and
the number of dimensions), one big-endian int32 per dimension, then the values. We
parse it ourselves: the pixels stay lossless uint8, and a truncated or foreign file is
an error naming it, not a reshape failure deep inside torchvision.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ddrank_steps.data.datasets import Facts, PixelSplit, RawDataset, register_source
from ddrank_steps.data.datasets.layout_checks import loader_root, plan_root, root_fix
from ddrank_steps.errors import InputError

log = logging.getLogger("ddrank.datasets.mnist")

UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class _Format:
    source: str
    folder: str  # torchvision's base folder under root
    classes: tuple[str, ...]
    mean: tuple[float]
    std: tuple[float]

    @property
    def facts(self) -> Facts:
        """Its meta before preparing: 28 x 28 grey images."""
        return Facts(len(self.classes), 1, 255.0, self.mean, self.std, self.classes)


MNIST_FORMAT = _Format(
    source="MNIST",
    folder="MNIST",
    classes=tuple(
        f"{i} - {w}"
        for i, w in enumerate(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        )
    ),
    # The usual MNIST statistics (DC/DSA/MTT use them too).
    mean=(0.1307,),
    std=(0.3081,),
)

FASHION_FORMAT = _Format(
    source="FashionMNIST",
    folder="FashionMNIST",
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    # DC/DSA's FashionMNIST statistics.
    mean=(0.2861,),
    std=(0.3530,),
)

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def layout(root, fmt: _Format) -> str:
    return (
        f"expected {root}/{fmt.folder}/raw/train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and "
        f"t10k-labels-idx1-ubyte[.gz] (torchvision's {fmt.source} layout), "
        "or those four files directly in root"
    )


def _fix(fmt: _Format) -> str:
    return root_fix(fmt.source, f"the folder that holds {fmt.folder}/raw/ or the four idx files")


def find_folder(root: Path, fmt: _Format) -> Path:
    for folder in (root / fmt.folder / "raw", root / "raw", root):
        base = folder / FILES["train_images"]
        if base.is_file() or base.with_name(base.name + ".gz").is_file():
            return folder
    return root / fmt.folder / "raw"  # absent: the missing file names the layout


def _locate(folder: Path, name: str, root: Path, fmt: _Format) -> Path:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    raise InputError(folder / name, "file", f"not found (nor .gz); {layout(root, fmt)}", _fix(fmt))


def read_idx(path: Path, ndim: int, root, fmt: _Format) -> np.ndarray:
    """The array of an idx file of unsigned bytes with `ndim` dimensions."""
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:  # by content, so a .gz that was unpacked in place still reads
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(
                path,
                "file",
                f"cannot be decompressed ({exc}); {layout(root, fmt)}",
                "download the dataset again",
            ) from None
    expected_magic = (UBYTE << 8) | ndim
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) >= 4 and magic != expected_magic:
        raise InputError(
            path,
            "header",
            f"magic number {magic:#010x}; expected {expected_magic:#010x} (idx, unsigned "
            f"bytes, {ndim} dimensions); {layout(root, fmt)}",
            "download the dataset again",
        )
    if len(raw) < 4 + 4 * ndim:
        raise InputError(
            path, "header", f"file has only {len(raw)} bytes; {layout(root, fmt)}", "download again"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = raw[4 + 4 * ndim :]
    count = int(np.prod(dims))
    if len(body) != count:
        raise InputError(
            path,
            "data",
            f"holds {len(body)} bytes of values; its header {dims} promises {count}",
            "the file is truncated or padded: download the dataset again",
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _read_split(folder: Path, prefix: str, root: Path, fmt: _Format) -> PixelSplit:
    images_path = _locate(folder, FILES[f"{prefix}_images"], root, fmt)
    labels_path = _locate(folder, FILES[f"{prefix}_labels"], root, fmt)
    images = read_idx(images_path, 3, root, fmt)
    labels = read_idx(labels_path, 1, root, fmt).astype(np.int64)
    if len(labels) != len(images):
        raise InputError(
            labels_path,
            "labels",
            f"{len(labels)} labels for the {len(images)} images of {images_path.name}",
            "download the dataset again",
        )
    if len(labels) and labels.max() >= len(fmt.classes):
        raise InputError(
            labels_path,
            "labels",
            f"values span [{labels.min()}, {labels.max()}], outside [0, {len(fmt.classes)})",
            "download the dataset again",
        )
    return PixelSplit(
        images=torch.from_numpy(images.copy()).unsqueeze(1).contiguous(),  # (N, 1, H, W)
        labels=torch.from_numpy(labels),
    )


def _download(root: Path, fmt: _Format) -> None:
    import torchvision

    cls = getattr(torchvision.datasets, fmt.source)
    log.info("downloading %s to %s (skipped when already there)", fmt.source, root)
    for train in (True, False):
        cls(str(root), train=train, download=True)


def load_format(settings: dict, fmt: _Format) -> RawDataset:
    root = loader_root(
        settings,
        fmt.source,
        partial(layout, fmt=fmt),
        _fix(fmt),
        default=f"data/{fmt.source.lower()}",
        fetch=partial(_download, fmt=fmt),
    )
    folder = find_folder(root, fmt)
    return RawDataset(
        name=fmt.source,
        classes=list(fmt.classes),
        max_value=fmt.facts.max_value,
        train=_read_split(folder, "train", root, fmt),
        test=_read_split(folder, "test", root, fmt),
        mean=list(fmt.mean),
        std=list(fmt.std),
        notes={"folder": str(folder), "format": f"{fmt.source} idx files"},
    )


def check_layout(settings: dict, fmt: _Format) -> None:
    """At plan time: root and the four idx files are there (unless download: true)."""
    root = plan_root(settings, fmt.source, partial(layout, fmt=fmt), _fix(fmt))
    if root is None:
        return
    folder = find_folder(root, fmt)
    for name in FILES.values():
        _locate(folder, name, root, fmt)


def register() -> None:
    for fmt in (MNIST_FORMAT, FASHION_FORMAT):
        register_source(
            fmt.source,
            partial(load_format, fmt=fmt),
            size=28,
            check_layout=partial(check_layout, fmt=fmt),
            facts=fmt.facts,
        )
