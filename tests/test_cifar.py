"""CIFAR-10/100 from torchvision's python-pickle layout, on tiny fake trees in that format."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from format_writers import (
    CIFAR10_NAMES,
    CIFAR100_NAMES,
    PER_CLASS_PER_BATCH,
    dump_pickle,
    write_cifar10,
    write_cifar100,
)
from helpers import dry_run

from ddrank_steps.data import dataset_store
from ddrank_steps.data.datasets import SOURCES, load_source
from ddrank_steps.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cifar")
    return {
        "root": root,
        "cifar10": write_cifar10(root / "cifar10"),
        "cifar100": write_cifar100(root / "cifar100"),
    }


def test_both_sources_are_registered():
    assert {"CIFAR10", "CIFAR100"} <= set(SOURCES)


def test_cifar10_shapes_labels_and_classes(trees):
    raw = load_source("CIFAR10", {"root": str(trees["root"] / "cifar10")})
    fake = trees["cifar10"]
    assert raw.train.images.shape == (50 * PER_CLASS_PER_BATCH, 3, 32, 32)
    assert raw.test.images.shape == (30, 3, 32, 32)
    assert raw.train.images.dtype == torch.uint8 and raw.test.images.dtype == torch.uint8
    assert raw.train.labels.dtype == torch.int64
    assert raw.train.labels.tolist() == fake["train_labels"]  # batch 1..5, in file order
    assert raw.test.labels.tolist() == fake["test_labels"]
    assert torch.bincount(raw.train.labels).tolist() == [5 * PER_CLASS_PER_BATCH] * 10
    assert raw.classes == CIFAR10_NAMES
    assert raw.max_value == 255.0
    assert raw.mean == pytest.approx([0.4914, 0.4822, 0.4465])
    assert raw.std == pytest.approx([0.2023, 0.1994, 0.2010])


def test_pixels_round_trip_from_row_major_planes(trees):
    raw = load_source("CIFAR10", {"root": str(trees["root"] / "cifar10")})
    rows = trees["cifar10"]["train_data"]
    n, c, y, x = 37, 2, 5, 29  # image 37 lies in data_batch_2
    assert raw.train.images[n, c, y, x].item() == rows[n, c * 1024 + y * 32 + x]
    assert np.array_equal(raw.train.images.reshape(len(rows), -1).numpy(), rows)
    test_rows = trees["cifar10"]["test_data"]
    assert raw.test.images[3, 1, 31, 0].item() == test_rows[3, 1024 + 31 * 32]


def test_root_may_be_the_batches_folder_itself(trees):
    parent = load_source("CIFAR10", {"root": str(trees["root"] / "cifar10")})
    itself = load_source("CIFAR10", {"root": str(trees["root"] / "cifar10/cifar-10-batches-py")})
    assert torch.equal(parent.train.images, itself.train.images)
    assert torch.equal(parent.test.labels, itself.test.labels)
    c100 = load_source("CIFAR100", {"root": str(trees["root"] / "cifar100/cifar-100-python")})
    assert len(c100.classes) == 100


def test_cifar100_fine_labels_classes_and_own_stats(trees):
    raw = load_source("CIFAR100", {"root": str(trees["root"] / "cifar100")})
    fake = trees["cifar100"]
    assert raw.train.images.shape == (200, 3, 32, 32)
    assert raw.test.images.shape == (100, 3, 32, 32)
    assert raw.train.labels.tolist() == fake["train_labels"]  # fine, not coarse
    assert raw.test.labels.tolist() == fake["test_labels"]
    assert raw.classes == CIFAR100_NAMES
    assert np.array_equal(raw.test.images.reshape(100, -1).numpy(), fake["test_data"])
    assert raw.mean == pytest.approx([0.5071, 0.4866, 0.4409])
    assert raw.std == pytest.approx([0.2673, 0.2564, 0.2762])


def test_missing_batch_names_the_file_and_the_layout(trees, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(trees["root"] / "cifar10", root)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(InputError) as info:
        load_source("CIFAR10", {"root": str(root)})
    message = str(info.value)
    assert str(root / "cifar-10-batches-py" / "data_batch_3") in message
    assert "cifar-10-batches-py/data_batch_1" in message and "batches.meta" in message
    assert "torchvision's CIFAR-10 python format" in message
    assert "download: true" in message and ".root" in message


def test_root_without_the_dataset_names_the_expected_layout(tmp_path):
    with pytest.raises(InputError) as info:
        load_source("CIFAR100", {"root": str(tmp_path)})
    message = str(info.value)
    assert str(tmp_path / "cifar-100-python" / "train") in message
    assert "CIFAR-100 python format" in message
    with pytest.raises(InputError, match="folder not found"):
        load_source("CIFAR10", {"root": str(tmp_path / "nowhere")})


def test_corrupt_batch_is_an_input_error(trees, tmp_path):
    root = tmp_path / "corrupt"
    shutil.copytree(trees["root"] / "cifar10", root)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match=r"test_batch: field 'file': cannot be read as a pickle"):
        load_source("CIFAR10", {"root": str(root)})
    dump_pickle(root / "cifar-10-batches-py" / "test_batch", {b"data": np.zeros((2, 10), np.uint8)})
    with pytest.raises(InputError, match=r"field 'labels': missing"):
        load_source("CIFAR10", {"root": str(root)})


def test_unset_root_is_a_config_error():
    with pytest.raises(ConfigError, match=r"datasets\.<name>\.root"):
        load_source("CIFAR10", {"root": None, "download": False})


def test_prepare_records_cifar100_own_stats(trees, tmp_path):
    settings = {"source": "CIFAR100", "root": str(trees["root"] / "cifar100")}
    data_out, meta_out = tmp_path / "data.pt", tmp_path / "meta.json"
    dataset_store.prepare("c100", settings, str(data_out), str(meta_out))
    meta = json.loads(meta_out.read_text())
    assert meta["mean"] == pytest.approx([0.5071, 0.4866, 0.4409])
    assert meta["std"] == pytest.approx([0.2673, 0.2564, 0.2762])
    assert meta["stats_from"] == "source"
    assert meta["num_classes"] == 100 and meta["classes"][:2] == CIFAR100_NAMES[:2]
    assert (meta["channels"], meta["height"], meta["width"]) == (3, 32, 32)
    assert meta["max_value"] == 255.0
    assert meta["sizes"] == {"train": 200, "test": 100}
    blob = torch.load(data_out, weights_only=True)
    assert blob["train"]["images"].dtype == torch.uint8


@pytest.mark.workflow
def test_cifar10_example_config_dry_runs(trees, tmp_path):
    config = yaml.safe_load((REPO / "config" / "cifar10-example.yaml").read_text())
    dataset = next(iter(config["datasets"].values()))
    assert dataset["source"] == "CIFAR10"
    dataset["root"] = str(trees["root"] / "cifar10")
    method = next(iter(config["methods"].values()))
    images = tmp_path / "distilled" / "images.pt"
    images.parent.mkdir()
    torch.save(torch.randn(100, 3, 32, 32), images)
    method["images"] = str(images)
    text = dry_run(tmp_path, config)
    # 5 rounds x (syn + rdm), and 5 real-hard runs (their own rule: they keep a checkpoint)
    assert re.search(r"^train\s+10$", text, re.MULTILINE), text[-3000:]
    assert re.search(r"^train_real\s+5$", text, re.MULTILINE), text[-3000:]
    assert re.search(r"^prepare_dataset\s+1$", text, re.MULTILINE), text[-3000:]
