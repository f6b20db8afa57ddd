"""Real datasets from their on-disk formats: MNIST idx, SVHN .mat, TinyImageNet, ImageNet
trees (full and standalone subsets), any ImageFolder tree. Each loader reads back tiny
fixtures with the right shapes, labels and class order; each broken layout is an error
that names the file and the layout expected."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from format_writers import (
    TINY_WNIDS,
    code,
    full_tree_wnids,
    idx_bytes,
    subset_wnids,
    write_folder_tree,
    write_image,
    write_imagenet_tree,
    write_mnist,
    write_svhn,
    write_tiny,
)

from ddrank_steps.data import dataset_store
from ddrank_steps.data.datasets import SOURCES, FileSplit, check_settings, load_source
from ddrank_steps.data.datasets.imagenet import SUBSETS, WNIDS
from ddrank_steps.data.image_files import decode
from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.planning.checks import check_datasets

REPO = Path(__file__).resolve().parents[1]


def decoded(split: FileSplit) -> torch.Tensor:
    return torch.stack([decode(Path(split.root) / p, split.size) for p in split.paths])


def colour_of(image: torch.Tensor) -> tuple[int, int, int]:
    return tuple(int(v) for v in image[:, 0, 0])


def test_every_source_of_the_issue_is_registered_and_in_the_schema():
    names = {
        "digits",
        "MNIST",
        "FashionMNIST",
        "SVHN",
        "CIFAR10",
        "CIFAR100",
        "TinyImageNet",
        "ImageNette",
        "ImageWoof",
        "ImageMeow",
        "ImageSquawk",
        "ImageFruit",
        "ImageYellow",
        "ImageNet1K",
        "ImageFolder",
    }
    assert set(SOURCES) == names
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert set(schema["$defs"]["dataset"]["properties"]["source"]["enum"]) == names


# --- MNIST / FashionMNIST ----------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_in_torchvision_layout(tmp_path, gz):
    written = write_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    raw = load_source("MNIST", {"root": str(tmp_path)})
    images, labels = written["train"]
    assert raw.train.images.shape == (30, 1, 28, 28) and raw.train.images.dtype == torch.uint8
    assert raw.test.images.shape == (20, 1, 28, 28)
    assert torch.equal(raw.train.images[:, 0], torch.from_numpy(images))
    assert raw.train.labels.tolist() == labels.tolist()
    assert raw.test.labels.tolist() == written["test"][1].tolist()
    assert raw.classes[0] == "0 - zero" and len(raw.classes) == 10
    assert raw.mean == [0.1307] and raw.std == [0.3081]


def test_fashion_mnist_in_a_bare_folder_with_its_own_classes_and_stats(tmp_path):
    written = write_mnist(tmp_path, gz=True, seed=3)
    raw = load_source("FashionMNIST", {"root": str(tmp_path)})
    assert torch.equal(raw.test.images[:, 0], torch.from_numpy(written["test"][0]))
    assert raw.classes[0] == "T-shirt/top" and raw.classes[9] == "Ankle boot"
    assert raw.mean == [0.2861] and raw.std == [0.3530]


def test_mnist_missing_file_names_the_expected_layout(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", gz=False)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError) as info:
        load_source("MNIST", {"root": str(tmp_path)})
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte: field 'file': not found (nor .gz)" in message
    assert f"{tmp_path}/MNIST/raw/train-images-idx3-ubyte[.gz]" in message
    assert "torchvision's MNIST layout" in message and "download: true" in message


def test_mnist_corrupt_files_are_input_errors(tmp_path):
    folder = tmp_path / "raw"
    write_mnist(folder, gz=True)
    target = folder / "train-images-idx3-ubyte.gz"
    target.write_bytes(gzip.compress(b"")[:12])  # a truncated gzip stream
    with pytest.raises(InputError, match=r"field 'file': cannot be decompressed"):
        load_source("MNIST", {"root": str(tmp_path)})
    target.write_bytes(idx_bytes(np.zeros((5,), np.uint8)))  # labels where images belong
    with pytest.raises(
        InputError, match=r"field 'header': magic number 0x00000801; expected 0x00000803"
    ):
        load_source("MNIST", {"root": str(tmp_path)})
    target.write_bytes(idx_bytes(np.zeros((30, 28, 28), np.uint8))[:-5])
    with pytest.raises(InputError, match=r"field 'data': holds 23515 bytes .* promises 23520"):
        load_source("MNIST", {"root": str(tmp_path)})


# --- SVHN ---------------------------------------------------------------------------------------


def test_svhn_mat_transposed_to_nchw_with_label_10_as_digit_0(tmp_path):
    written = write_svhn(tmp_path)
    raw = load_source("SVHN", {"root": str(tmp_path)})
    x, digits = written["train"]
    assert raw.train.images.shape == (30, 3, 32, 32) and raw.train.images.dtype == torch.uint8
    assert raw.test.images.shape == (20, 3, 32, 32)
    assert raw.train.labels.tolist() == digits.tolist()  # 10 in the file -> 0
    n, c, h, w = 7, 2, 5, 30
    assert raw.train.images[n, c, h, w].item() == x[h, w, c, n]
    assert raw.mean == pytest.approx([0.4377, 0.4438, 0.4728])


def test_svhn_missing_and_corrupt_files(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(InputError) as info:
        load_source("SVHN", {"root": str(tmp_path)})
    assert "test_32x32.mat: field 'file': not found" in str(info.value)
    assert f"expected {tmp_path}/train_32x32.mat and {tmp_path}/test_32x32.mat" in str(info.value)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(InputError, match=r"cannot be read as a MATLAB file"):
        load_source("SVHN", {"root": str(tmp_path)})


# --- TinyImageNet -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return write_tiny(tmp_path_factory.mktemp("tiny"))


def test_tiny_imagenet_classes_are_sorted_wnids_and_val_comes_from_annotations(tiny):
    raw = load_source("TinyImageNet", {"root": str(tiny["root"].parent)})  # the zip's parent
    assert raw.classes == sorted(TINY_WNIDS)
    assert isinstance(raw.train, FileSplit) and raw.train.size == 64
    assert len(raw.train.paths) == 9 and raw.train.paths[0].startswith("train/n01443537/images/")
    assert raw.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # val: ordered by class then file, labelled through val_annotations.txt
    assert raw.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    pixels = decoded(raw.test)
    assert pixels.shape == (6, 3, 64, 64)
    for image, label in zip(pixels, raw.test.labels.tolist(), strict=True):
        k = TINY_WNIDS.index(raw.classes[label])  # the writer's colour code of that wnid
        assert abs(colour_of(image)[0] - code(k, 10)[0]) <= 3 + 20 * 0  # JPEG: ±3
    assert raw.mean == [0.485, 0.456, 0.406]


def test_tiny_imagenet_val_sorted_into_wnid_folders_reads_the_same(tiny, tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(tiny["root"], root)
    for line in tiny["lines"]:
        name, wnid = line.split("\t")[:2]
        (root / "val" / wnid).mkdir(exist_ok=True)
        shutil.move(root / "val" / "images" / name, root / "val" / wnid / name)
    (root / "val" / "val_annotations.txt").unlink()
    (root / "val" / "images").rmdir()
    refoldered = load_source("TinyImageNet", {"root": str(root)})
    original = load_source("TinyImageNet", {"root": str(tiny["root"])})
    assert refoldered.test.labels.tolist() == original.test.labels.tolist()
    assert torch.equal(decoded(refoldered.test), decoded(original.test))


def test_tiny_imagenet_broken_layouts_name_the_expected_layout(tiny, tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(tiny["root"], root)
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(InputError) as info:
        load_source("TinyImageNet", {"root": str(root)})
    assert "val_annotations.txt: field 'file': not found" in str(info.value)
    assert "train/<wnid>/images/*.JPEG" in str(info.value)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01443537\t0\t0\t1\t1\n")
    (root / "val" / "images" / "val_0.JPEG").unlink()
    with pytest.raises(InputError, match=r"val_0.JPEG: field 'file': listed on line 1"):
        load_source("TinyImageNet", {"root": str(root)})
    (root / "wnids.txt").unlink()
    with pytest.raises(InputError, match=r"wnids.txt: field 'file': not found; expected"):
        load_source("TinyImageNet", {"root": str(root)})


# --- ImageNet -----------------------------------------------------------------------------------


def test_subset_wnid_table_matches_the_reference_indices():
    assert all(len(v) == 10 for v in SUBSETS.values())
    assert {i for v in SUBSETS.values() for i in v} == set(WNIDS)
    wnids = [w for w, _ in WNIDS.values()]
    assert len(set(wnids)) == len(wnids)
    # the index order is the sorted-wnid order (how ImageNet-1K indices are defined)
    assert [WNIDS[i][0] for i in sorted(WNIDS)] == sorted(wnids)
    assert subset_wnids("ImageNette")[:2] == ["n01440764", "n02102040"]  # tench, springer


def test_subset_from_a_full_tree_takes_the_reference_order(tmp_path):
    wnids = full_tree_wnids("ImageNette")
    root = write_imagenet_tree(tmp_path / "imagenet", wnids)
    raw = load_source("ImageNette", {"root": str(root), "image_size": 8})
    assert raw.classes == subset_wnids("ImageNette")
    assert raw.train.size == 8 and len(raw.train.paths) == 20
    assert raw.train.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert raw.test.labels.tolist() == list(range(10))
    pixels = decoded(raw.train)
    assert pixels.shape == (20, 3, 8, 8)  # 24x16 -> shorter side 8 -> centre crop 8x8
    for image, path, label in zip(pixels, raw.train.paths, raw.train.labels, strict=True):
        wnid = path.split("/")[1]
        assert wnid == subset_wnids("ImageNette")[label]
        red = colour_of(image)[0]
        assert abs(red - code(wnids.index(wnid), int(path[-6]))[0]) <= 3
    assert raw.notes["class_names"][0] == "tench"


def test_subset_from_a_standalone_ten_class_tree(tmp_path):
    wnids = subset_wnids("ImageWoof")  # not sorted: labels must follow this order
    write_imagenet_tree(tmp_path / "imagewoof2", sorted(wnids), ext=".png")
    raw = load_source("ImageWoof", {"root": str(tmp_path)})  # finds imagewoof2/ inside
    assert raw.classes == wnids and raw.train.size == 128
    first_of_class = [raw.train.paths[2 * c].split("/")[1] for c in range(10)]
    assert first_of_class == wnids
    assert sorted(wnids) != wnids


def test_imagenet1k_classes_are_the_sorted_wnids(tmp_path):
    wnids = full_tree_wnids("ImageMeow")
    root = write_imagenet_tree(tmp_path / "in1k", wnids)
    raw = load_source("ImageNet1K", {"root": str(root), "image_size": 8})
    assert raw.classes == wnids and raw.train.size == 8
    assert raw.test.labels.tolist() == list(range(len(wnids)))


def test_imagenet_missing_class_folder_and_flat_val_name_the_layout(tmp_path):
    root = write_imagenet_tree(tmp_path / "in", subset_wnids("ImageSquawk")[:9])
    with pytest.raises(InputError) as info:
        load_source("ImageSquawk", {"root": str(root)})
    missing = subset_wnids("ImageSquawk")[9]
    assert f"train/{missing}: field 'class folder': not found" in str(info.value)
    assert "a full ImageNet tree, or a 10-class tree" in str(info.value)
    flat = tmp_path / "flat"
    write_imagenet_tree(flat, ["n01440764"])
    shutil.rmtree(flat / "val")
    write_image(flat / "val" / "ILSVRC2012_val_00000001.JPEG", (1, 2, 3))
    with pytest.raises(InputError, match=r"holds files but no <wnid>/ folders"):
        load_source("ImageNet1K", {"root": str(flat)})
    with pytest.raises(ConfigError, match=r"download is not available for source ImageFruit"):
        load_source("ImageFruit", {"root": str(root), "download": True})


def test_corrupt_image_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.JPEG"
    path.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(InputError, match=r"bad.JPEG: field 'image': cannot be decoded"):
        decode(path, 8)


# --- ImageFolder --------------------------------------------------------------------------------


def test_image_folder_classes_sorted_png_and_jpg(tmp_path):
    root = write_folder_tree(tmp_path / "tree", test_dir="val")
    raw = load_source("ImageFolder", {"root": str(root), "image_size": 8})
    assert raw.classes == ["ant", "cat", "dog"]
    assert raw.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [p.rsplit(".", 1)[1] for p in raw.train.paths[:3]] == ["png", "jpg", "png"]
    assert raw.mean is None  # computed from the train split at prepare time
    pixels = decoded(raw.test)
    writer_order = ("dog", "ant", "cat")
    for image, label in zip(pixels, raw.test.labels.tolist(), strict=True):
        k = writer_order.index(raw.classes[label])
        assert colour_of(image)[1] == code(k, 0)[1]  # png: exact


def test_image_folder_config_classes_choose_and_order(tmp_path):
    root = write_folder_tree(tmp_path / "tree")
    raw = load_source(
        "ImageFolder", {"root": str(root), "image_size": 8, "classes": ["dog", "ant"]}
    )
    assert raw.classes == ["dog", "ant"]
    assert raw.test.labels.tolist() == [0, 0, 1, 1]  # cat's test folder is left out
    with pytest.raises(ConfigError, match=r"\['bee'\] have no folder"):
        load_source("ImageFolder", {"root": str(root), "image_size": 8, "classes": ["bee"]})


def test_image_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"image_size is required for source ImageFolder"):
        load_source("ImageFolder", {"root": str(tmp_path)})
    with pytest.raises(InputError) as info:
        load_source("ImageFolder", {"root": str(tmp_path), "image_size": 8})
    assert f"{tmp_path}/train: field 'folder': not found" in str(info.value)
    assert "torchvision's ImageFolder layout" in str(info.value)
    root = write_folder_tree(tmp_path / "tree")
    write_image(root / "test" / "bee" / "x.png", (0, 0, 0))
    with pytest.raises(InputError, match=r"test/bee: field 'class folder': has no train folder"):
        load_source("ImageFolder", {"root": str(root), "image_size": 8})
    shutil.rmtree(root / "test" / "bee")
    for f in (root / "train" / "cat").iterdir():
        f.unlink()
    with pytest.raises(InputError, match=r"train/cat: field 'class folder': holds no images"):
        load_source("ImageFolder", {"root": str(root), "image_size": 8})


# --- config checks and prepare --------------------------------------------------------------------


def test_source_specific_keys_are_checked_before_any_job():
    with pytest.raises(ConfigError, match=r"datasets.c.image_size is not used by source CIFAR10"):
        check_datasets({"datasets": {"c": {"source": "CIFAR10", "image_size": 64}}})
    with pytest.raises(ConfigError, match=r"datasets.t.classes is not used by source TinyImageNet"):
        check_datasets({"datasets": {"t": {"source": "TinyImageNet", "classes": ["a"]}}})
    with pytest.raises(
        ConfigError, match=r"datasets.f.image_size is required for source ImageFolder"
    ):
        check_datasets({"datasets": {"f": {"source": "ImageFolder", "root": "x"}}})
    assert check_settings("ImageNette", {"image_size": 64}).files


def test_prepare_caches_a_small_image_tree_as_uint8_with_its_files(tmp_path):
    root = write_folder_tree(tmp_path / "tree")
    data, meta_path = tmp_path / "data.pt", tmp_path / "meta.json"
    settings = {"source": "ImageFolder", "root": str(root), "image_size": 8}
    meta = dataset_store.prepare("tree", settings, str(data), str(meta_path))
    assert meta["storage"] == "cached" and meta["stats_from"] == "train split"
    assert (meta["channels"], meta["height"], meta["width"]) == (3, 8, 8)
    assert meta["classes"] == ["ant", "cat", "dog"] and meta["sizes"] == {"train": 9, "test": 6}
    assert "centre crop" in meta["resize"]
    blob = torch.load(data, weights_only=True)
    assert blob["train"]["images"].dtype == torch.uint8
    assert blob["train"]["files"][0] == "train/ant/img0.png"
    assert json.loads(meta_path.read_text())["uint8_bytes"] == 15 * 3 * 8 * 8


def test_resize_and_crop_is_torchvision_resize_then_centre_crop():
    import torchvision.transforms.functional as F
    from PIL import Image

    from ddrank_steps.data.image_files import resize_and_crop

    rng = np.random.default_rng(0)
    for w, h, size in ((37, 23, 16), (20, 41, 9), (64, 64, 32), (13, 30, 13)):
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ours = np.asarray(resize_and_crop(image, size))
        theirs = np.asarray(F.center_crop(F.resize(image, [size], antialias=True), [size, size]))
        assert ours.shape == (size, size, 3)
        assert np.array_equal(ours, theirs), (w, h, size)


# --- what a set is checked against before preparing -------------------------------------------

DIGITS_STATS = {"mean": [0.3], "std": [0.4]}  # digits' own are measured when preparing


def written_source(source: str, tmp_path: Path) -> dict:
    """Tiny files of `source` in its format; its dataset settings."""
    from test_cifar import write_cifar10, write_cifar100

    if source == "digits":
        return {"source": "digits", **DIGITS_STATS}
    if source in ("CIFAR10", "CIFAR100"):
        (write_cifar10 if source == "CIFAR10" else write_cifar100)(tmp_path)
        return {"source": source, "root": str(tmp_path)}
    if source in ("MNIST", "FashionMNIST"):
        write_mnist(tmp_path / source / "raw", gz=False)
        return {"source": source, "root": str(tmp_path)}
    if source == "SVHN":
        write_svhn(tmp_path)
        return {"source": source, "root": str(tmp_path)}
    root = write_imagenet_tree(tmp_path / "imagenet", full_tree_wnids(source))
    return {"source": source, "root": str(root), "image_size": 8}


@pytest.mark.parametrize("source", sorted(n for n, s in SOURCES.items() if s.facts is not None))
def test_a_sources_facts_are_what_preparing_writes(source, tmp_path):
    """The API checks a set against these facts instead of preparing the dataset first:
    they must be what the prepare stage writes (`dataset_store.meta_before_preparing`)."""
    settings = written_source(source, tmp_path)
    early = dataset_store.meta_before_preparing("d", settings, need_class_names=False)
    dataset_store.prepare("d", settings, str(tmp_path / "data.pt"), str(tmp_path / "meta.json"))
    prepared = DatasetMeta.load(tmp_path / "meta.json")
    for field in ("name", "num_classes", "channels", "height", "width", "max_value", "zca"):
        assert getattr(early, field) == getattr(prepared, field), field
    assert early.mean == pytest.approx(prepared.mean) and early.std == pytest.approx(prepared.std)
    named = dataset_store.meta_before_preparing("d", settings, need_class_names=True)
    if SOURCES[source].facts.classes is None:  # read from the files when preparing
        assert early.classes == [] and named is None
    else:
        assert early.classes == named.classes == prepared.classes


def test_facts_only_known_after_preparing_give_none(tmp_path):
    """Digits' statistics are measured on its train split; TinyImageNet's, ImageNet-1K's
    and ImageFolder's classes come from their files."""
    assert dataset_store.meta_before_preparing("d", {"source": "digits"}) is None
    assert dataset_store.meta_before_preparing("d", {"source": "digits", **DIGITS_STATS})
    for source in ("TinyImageNet", "ImageNet1K", "ImageFolder"):
        settings = {"source": source, "root": str(tmp_path), "image_size": 8, **DIGITS_STATS}
        assert dataset_store.meta_before_preparing("d", settings) is None
    with pytest.raises(ConfigError, match=r"datasets.c.mean/std need 3 values"):
        dataset_store.meta_before_preparing("c", {"source": "CIFAR10", **DIGITS_STATS})
