"""Image folders in and out: a method's distilled set given as a class-folder tree, the
random subsets' lossless PNG folders, and a CIFAR-10 IPC10 config scoring one set from an
image folder and one from a .pt against a fixture CIFAR-10."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from format_writers import write_cifar10, write_image
from PIL import Image

from ddrank_steps.data import dataset_store
from ddrank_steps.data.png_folder import read_png_folder, write_png_folder
from ddrank_steps.data.syn_import import import_set, read_image_folder
from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.errors import InputError
from ddrank_steps.stages import random_subset

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"

META = DatasetMeta(
    name="tiny3",
    num_classes=3,
    channels=3,
    height=8,
    width=8,
    mean=[0.5, 0.4, 0.3],
    std=[0.2, 0.25, 0.3],
    max_value=255.0,
    classes=["bird", "cat", "dog"],
)


def write_set_folder(root: Path, names=("00000", "00001", "00002"), ipc=2, size=(8, 8), ext=".png"):
    rng = np.random.default_rng(1)
    pixels = {}
    for k, name in enumerate(names):
        for j in range(ipc):
            array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            pixels[(k, j)] = write_image(root / name / f"{j:03d}{ext}", array)
    return pixels


def normalised(array: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(META.mean).view(3, 1, 1)) / torch.tensor(META.std).view(3, 1, 1)


# --- a method's set as an image folder ----------------------------------------------------------


def test_image_folder_set_is_labelled_by_sorted_folders_and_normalised(tmp_path):
    pixels = write_set_folder(tmp_path / "set")
    images, labels = read_image_folder(str(tmp_path / "set"), META)
    assert images.shape == (6, 3, 8, 8) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.allclose(images[3], normalised(pixels[(1, 1)]))
    blob = import_set("m", str(tmp_path / "set"), None, 0.01, 2, META)
    assert blob["info"]["label_kind"] == "folder" and blob["lr"] == 0.01
    assert torch.equal(blob["labels"], labels)


def test_image_folder_named_by_class_names_takes_the_dataset_order(tmp_path):
    meta = DatasetMeta(**{**META.__dict__, "classes": ["zebra", "ant", "moth"]})
    write_set_folder(tmp_path / "set", names=("zebra", "ant", "moth"))
    _, labels = read_image_folder(str(tmp_path / "set"), meta)
    # the folders are the dataset's class names: by name (zebra = 0), not sorted (ant = 0)
    first = sorted(p.parent.name for p in (tmp_path / "set").rglob("000.png"))
    assert first == ["ant", "moth", "zebra"]
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    images, _ = read_image_folder(str(tmp_path / "set"), meta)
    zebra = np.asarray(Image.open(tmp_path / "set/zebra/000.png"))
    assert torch.allclose(images[0], normalised(zebra))


def test_jpeg_image_folder_is_read(tmp_path):
    write_set_folder(tmp_path / "set", ext=".jpg")
    images, labels = read_image_folder(str(tmp_path / "set"), META)
    assert images.shape == (6, 3, 8, 8) and labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_image_folder_of_the_wrong_size_names_the_file(tmp_path):
    write_set_folder(tmp_path / "set")
    write_image(tmp_path / "set" / "00001" / "002.png", (1, 2, 3), size=(9, 8))
    with pytest.raises(InputError) as info:
        read_image_folder(str(tmp_path / "set"), META)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}/set/00001/002.png: field 'images': is 9x8 pixels")
    assert "dataset tiny3 images are 8x8" in message


def test_image_folder_missing_a_class(tmp_path):
    write_set_folder(tmp_path / "set", names=("00000", "00001"))
    with pytest.raises(InputError) as info:
        read_image_folder(str(tmp_path / "set"), META)
    assert str(info.value).startswith(f"{tmp_path}/set: field 'images': has 2 class folders")
    assert "dataset tiny3 has 3 classes" in str(info.value)
    (tmp_path / "set" / "00002").mkdir()
    with pytest.raises(InputError, match=r"00002: field 'images': class 2 folder holds no png/jpg"):
        read_image_folder(str(tmp_path / "set"), META)


def test_image_folder_ipc_mismatch(tmp_path):
    write_set_folder(tmp_path / "set", ipc=2)
    write_image(tmp_path / "set" / "00002" / "009.png", (1, 2, 3), size=(8, 8))
    with pytest.raises(InputError) as info:
        import_set("m", str(tmp_path / "set"), None, None, 2, META)
    assert str(info.value).startswith(f"{tmp_path}/set: field 'labels': images per class differ")
    assert "class 2: 3" in str(info.value)


def test_labels_file_that_disagrees_with_the_folders(tmp_path):
    write_set_folder(tmp_path / "set")
    torch.save(torch.tensor([0, 0, 1, 1, 1, 2]), tmp_path / "labels.pt")
    with pytest.raises(InputError, match=r"labels.pt: field 'labels': 1 hard labels disagree"):
        import_set("m", str(tmp_path / "set"), str(tmp_path / "labels.pt"), None, 2, META)
    torch.save(torch.randn(6, 3), tmp_path / "soft.pt")
    blob = import_set("m", str(tmp_path / "set"), str(tmp_path / "soft.pt"), None, 2, META)
    assert blob["labels"].tolist() == [0, 0, 1, 1, 2, 2] and blob["soft_labels"].shape == (6, 3)


# --- random subsets as PNG folders -------------------------------------------------------------


def test_png_folder_round_trips_raw_pixels_and_replaces_an_old_folder(tmp_path):
    pixels = torch.randint(0, 256, (6, 3, 5, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    folder = tmp_path / "seed0_png"
    (folder / "00007").mkdir(parents=True)
    (folder / "00007" / "stale.png").write_bytes(b"old")
    write_png_folder(pixels, labels, folder)
    back, back_labels = read_png_folder(folder)
    assert torch.equal(back, pixels) and torch.equal(back_labels, labels)
    assert sorted(p.name for p in folder.iterdir()) == ["00000", "00001", "00002"]
    grey = torch.randint(0, 17, (2, 1, 8, 8), dtype=torch.uint8)  # digits: raw 0..16
    write_png_folder(grey, torch.tensor([4, 4]), folder)
    back, back_labels = read_png_folder(folder)
    assert torch.equal(back, grey) and back_labels.tolist() == [4, 4]
    assert [p.name for p in tmp_path.iterdir()] == ["seed0_png"]  # no temporary left over


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root / "cifar10")
    data, meta = root / "data.pt", root / "meta.json"
    dataset_store.prepare(
        "cifar10", {"source": "CIFAR10", "root": str(root / "cifar10")}, str(data), str(meta)
    )
    return {"root": root, "data": data, "meta": meta}


def test_random_subset_png_folder_holds_the_exact_stored_pixels(cifar, tmp_path):
    def draw(ipc: int):
        args = random_subset.parser().parse_args(
            [
                *("--data", str(cifar["data"]), "--meta", str(cifar["meta"]), "--ipc", str(ipc)),
                *("--round-seed", "0", "--out", str(tmp_path / "s.pt")),
                *("--manifest", str(tmp_path / "s.json"), "--png", str(tmp_path / "seed0_png")),
            ]
        )
        random_subset.main(args)
        return torch.load(tmp_path / "s.pt", weights_only=True)

    blob = draw(3)
    stored = torch.load(cifar["data"], weights_only=True)["train"]["images"]
    pixels, labels = read_png_folder(tmp_path / "seed0_png")
    assert torch.equal(pixels, stored[torch.tensor(blob["info"]["indices"])])
    assert torch.equal(labels, blob["labels"])
    draw(1)  # a rerun with a smaller ipc replaces the folder: no image of the old draw stays
    assert sorted(
        str(p.relative_to(tmp_path / "seed0_png")) for p in (tmp_path / "seed0_png").rglob("*.png")
    ) == [f"{c:05d}/00000.png" for c in range(10)]


# --- the worked example: one set from an image folder, one from a .pt -----------------------------


@pytest.mark.workflow
def test_cifar10_config_with_folder_and_pt_sets_validates_and_dry_runs(tmp_path):
    write_cifar10(tmp_path / "cifar10")
    config = yaml.safe_load((REPO / "config" / "cifar10-example.yaml").read_text())
    dataset = next(iter(config["datasets"].values()))
    dataset["root"] = str(tmp_path / "cifar10")
    template = next(iter(config["methods"].values()))
    rng = np.random.default_rng(0)
    for c in range(10):
        for j in range(10):
            array = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            write_image(tmp_path / "distilled" / "folder_set" / f"{c:05d}" / f"{j}.png", array)
    torch.save(torch.randn(100, 3, 32, 32), tmp_path / "distilled" / "images.pt")
    config["methods"] = {
        "from_folder": {**template, "images": "distilled/folder_set"},
        "from_pt": {**template, "images": "distilled/images.pt"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    base = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)),
        *("--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")),
        *("--cores", "2"),
    ]
    # validate: prepare the fixture CIFAR-10 and import (check) both sets for real
    targets = [f"results/sets/cifar10/syn/{m}.pt" for m in ("from_folder", "from_pt")]
    proc = subprocess.run([*base, *targets], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    folder_set = torch.load(tmp_path / targets[0], weights_only=True)
    assert folder_set["images"].shape == (100, 3, 32, 32)
    assert folder_set["info"]["label_kind"] == "folder"
    assert folder_set["labels"].tolist() == [c for c in range(10) for _ in range(10)]
    # then the whole DAG: both syn sets, one shared rdm baseline and real-hard per round
    proc = subprocess.run([*base, "--dry-run"], capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert re.search(r"^train\s+15$", text, re.MULTILINE), text[-3000:]
    assert re.search(r"^train_real\s+5$", text, re.MULTILINE), text[-3000:]
    assert re.search(r"^random_subset\s+5$", text, re.MULTILINE), text[-3000:]
    assert "syn_set" not in text.split("Job stats:", 1)[1]  # already imported and checked
