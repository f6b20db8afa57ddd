"""Writers of tiny datasets in the real on-disk formats (a few images per class).

Imported by the tests (not collected itself). Each writer returns what it wrote, so a
test can check that a loader reads back the same pixels, labels and class order.
Images of class folders are uniform colours that encode (class, image) when `coded`,
so that a test can tell which folder an image came from even after resizing (a
uniform image stays uniform under bilinear resizing and centre cropping).
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from ddrank_steps.data.datasets.imagenet import SUBSETS, WNIDS


def code(label: int, j: int) -> tuple[int, int, int]:
    """A colour that names (label, j) and survives resizing: uniform, values < 256."""
    return (label * 20 + j, 255 - label * 20, (j * 30) % 256)


def write_image(path: Path, rgb: tuple[int, int, int] | np.ndarray, size=(12, 10)) -> np.ndarray:
    """A png/jpg (by suffix) of a uniform colour or of the given (H, W, 3) array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(rgb, np.ndarray):
        array = rgb
    else:
        array = np.empty((size[1], size[0], 3), dtype=np.uint8)
        array[:] = rgb
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(array).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return array


# --- CIFAR python pickles --------------------------------------------------------------------

PER_CLASS_PER_BATCH = 2  # CIFAR-10: 5 batches x 2 images per class -> 10 per class
CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR100_NAMES = [f"class_{i:02d}" for i in range(100)]


def dump_pickle(path: Path, blob: dict) -> None:
    # bytes keys, as the real files (written by Python 2) have them
    with open(path, "wb") as f:
        pickle.dump(blob, f, protocol=2)


def _cifar_batch(rng, labels: list[int], labels_key: bytes) -> tuple[dict, np.ndarray]:
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    blob = {b"batch_label": b"fake", labels_key: labels, b"data": data}
    return blob, data


def write_cifar10(root: Path) -> dict:
    """A CIFAR-10 tree: 5 train batches and a test batch, classes interleaved."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_data, train_labels = [], []
    for i in range(1, 6):
        labels = [c for _ in range(PER_CLASS_PER_BATCH) for c in range(10)]
        rng.shuffle(labels)
        labels = [int(x) for x in labels]
        blob, data = _cifar_batch(rng, labels, b"labels")
        dump_pickle(folder / f"data_batch_{i}", blob)
        train_data.append(data)
        train_labels += labels
    test_labels = [c for c in range(10) for _ in range(3)]
    blob, test_data = _cifar_batch(rng, test_labels, b"labels")
    dump_pickle(folder / "test_batch", blob)
    names = [n.encode() for n in CIFAR10_NAMES]
    dump_pickle(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 20})
    return {
        "train_data": np.concatenate(train_data),
        "train_labels": train_labels,
        "test_data": test_data,
        "test_labels": test_labels,
    }


def write_cifar100(root: Path) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train_labels = [c for _ in range(2) for c in range(100)]
    blob, train_data = _cifar_batch(rng, train_labels, b"fine_labels")
    blob[b"coarse_labels"] = [c // 5 for c in train_labels]
    dump_pickle(folder / "train", blob)
    test_labels = list(range(100))
    blob, test_data = _cifar_batch(rng, test_labels, b"fine_labels")
    dump_pickle(folder / "test", blob)
    meta = {
        b"fine_label_names": [n.encode() for n in CIFAR100_NAMES],
        b"coarse_label_names": [f"super_{i}".encode() for i in range(20)],
    }
    dump_pickle(folder / "meta", meta)
    return {
        "train_data": train_data,
        "train_labels": train_labels,
        "test_data": test_data,
        "test_labels": test_labels,
    }


# --- MNIST idx --------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, gz: bool, seed: int = 0, per_class=(3, 2)) -> dict:
    """The four idx files in `folder` (gzipped when `gz`), classes interleaved."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in zip(("train", "t10k"), per_class, strict=True):
        labels = np.array([c for _ in range(n) for c in range(10)], dtype=np.uint8)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        out["train" if prefix == "train" else "test"] = (images, labels)
    return out


# --- SVHN .mat --------------------------------------------------------------------------------


def write_svhn(root: Path, seed: int = 0) -> dict:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", 3), ("test", 2)):
        digits = np.array([d for _ in range(n) for d in range(10)])
        y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)  # 10 is digit 0
        x = rng.integers(0, 256, size=(32, 32, 3, len(digits)), dtype=np.uint8)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, digits)
    return out


# --- TinyImageNet -----------------------------------------------------------------------------

TINY_WNIDS = ["n02124075", "n01443537", "n04067472"]  # not sorted, as in the real wnids.txt


def write_tiny(root: Path, train_per_class: int = 3, val_per_class: int = 2) -> dict:
    """tiny-imagenet-200/ with wnids.txt, train/<wnid>/images, val/images + annotations."""
    base = root / "tiny-imagenet-200"
    (base).mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    for k, wnid in enumerate(TINY_WNIDS):
        for j in range(train_per_class):
            write_image(base / "train" / wnid / "images" / f"{wnid}_{j}.JPEG", code(k, j), (64, 64))
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("ignored\n")
    lines = []
    number = 0
    # val images interleaved across classes, as in the real file
    for j in range(val_per_class):
        for k, wnid in enumerate(TINY_WNIDS):
            name = f"val_{number}.JPEG"
            write_image(base / "val" / "images" / name, code(k, 10 + j), (64, 64))
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
            number += 1
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "test" / "images").mkdir(parents=True)  # unlabelled; never read
    return {"root": base, "lines": lines}


# --- ImageNet trees ---------------------------------------------------------------------------


def write_imagenet_tree(root: Path, wnids: list[str], per_split=(2, 1), ext=".JPEG") -> Path:
    """root/train/<wnid>/*, root/val/<wnid>/*: uniform, non-square images coding the
    wnid's position in `wnids` (and the image number)."""
    for split, n in zip(("train", "val"), per_split, strict=True):
        for k, wnid in enumerate(wnids):
            for j in range(n):
                write_image(root / split / wnid / f"{wnid}_{j}{ext}", code(k, j), (24, 16))
    return root


def full_tree_wnids(subset: str) -> list[str]:
    """A 'full' tree for tests: the subset's wnids plus two others, sorted."""
    others = [WNIDS[i][0] for i in (9, 287) if WNIDS[i][0] not in subset_wnids(subset)]
    return sorted(set(subset_wnids(subset)) | set(others))


def subset_wnids(subset: str) -> list[str]:
    return [WNIDS[i][0] for i in SUBSETS[subset]]


# --- ImageFolder ------------------------------------------------------------------------------


def write_folder_tree(root: Path, classes=("dog", "ant", "cat"), train=3, test=2, test_dir="test"):
    """root/train/<class>/ and root/<test_dir>/<class>/, png and jpg mixed."""
    for k, name in enumerate(classes):
        for j in range(train):
            ext = ".png" if j % 2 == 0 else ".jpg"
            write_image(root / "train" / name / f"img{j}{ext}", code(k, j))
        for j in range(test):
            write_image(root / test_dir / name / f"t{j}.png", code(k, 10 + j))
    (root / "train" / "notes.txt").write_text("not a class folder\n")
    return root


# --- a reference config's dataset root ----------------------------------------------------------

# the folder each format unpacks to: a data_path may name it or the folder that holds it
UNPACKED = {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}
UNPACKED["TinyImageNet"] = "tiny-imagenet-200"


def write_reference_root(dataset: str, data_path: Path) -> None:
    """A tiny `dataset` in its real on-disk format where a reference config's data_path
    finds it. Several datasets may share one folder (the reference's configs put CIFAR,
    TinyImageNet and ImageNet all under ./dataset/): each format has its own names there.
    ImageNet-1K and its subsets share one full tree (planning reads no image)."""
    root = data_path.parent if data_path.name == UNPACKED.get(dataset) else data_path
    if dataset in UNPACKED and (root / UNPACKED[dataset]).exists():
        return
    if dataset == "CIFAR10":
        write_cifar10(root)
    elif dataset == "CIFAR100":
        write_cifar100(root)
    elif dataset == "TinyImageNet":
        write_tiny(root)
    elif dataset == "ImageNet1K" or dataset in SUBSETS:
        if not (root / "train").is_dir():
            write_imagenet_tree(root, full_tree_wnids("ImageNette"), per_split=(1, 1))
    else:
        raise ValueError(f"no writer for dataset {dataset!r}")


def write_cached_weights(torch_home: Path, archs) -> None:
    """A placeholder file where torch hub caches each torchvision model's default weights:
    the plan only asks whether they are there (their content is the job's to check)."""
    import torchvision

    hub = torch_home / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    for arch in archs:
        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        (hub / url.rsplit("/", 1)[1]).write_bytes(b"weights")
