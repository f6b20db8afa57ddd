"""Streamed vs cached real data: the prepare stage's choice, lazy decoding, and training on a
streamed split (DataLoader workers, the engine's seeded order) giving the cached result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from format_writers import write_image
from helpers import tiny_protocol

from ddrank_steps import prepare_dataset, random_subset, train
from ddrank_steps.data import DatasetMeta, load_split
from ddrank_steps.errors import InputError
from ddrank_steps.streaming import StreamedImages, is_streamed

CLASSES = ("c0", "c1", "c2")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """An ImageFolder tree of noisy, class-coloured 12x10 PNGs (learnable, not trivial)."""
    root = tmp_path_factory.mktemp("stream") / "tree"
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for k, name in enumerate(CLASSES):
            for j in range(n):
                array = rng.integers(0, 120, size=(10, 12, 3), dtype=np.uint8)
                array[..., k] += 120
                write_image(root / split / name / f"{j}.png", array)
    return root


def prepared(tree: Path, out: Path, limit_gb: float) -> tuple[Path, Path, dict]:
    out.mkdir(parents=True, exist_ok=True)
    data, meta = out / "data.pt", out / "meta.json"
    settings = {
        "source": "ImageFolder",
        "root": str(tree),
        "image_size": 8,
        "cache_limit_gb": limit_gb,
        # same statistics for both, so only the storage differs
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
    }
    info = prepare_dataset.prepare("tree", settings, str(data), str(meta), workers=0)
    return data, meta, info


@pytest.fixture(scope="module")
def both(tree, tmp_path_factory):
    base = tmp_path_factory.mktemp("prepared")
    return {
        "cached": prepared(tree, base / "cached", 2.0),
        "streamed": prepared(tree, base / "streamed", 0.0),
    }


def test_prepare_streams_above_the_cache_limit(both):
    cached, streamed = both["cached"][2], both["streamed"][2]
    assert cached["storage"] == "cached" and streamed["storage"] == "streamed"
    assert streamed["uint8_bytes"] == 36 * 3 * 8 * 8 > 0.0
    assert (streamed["channels"], streamed["height"], streamed["width"]) == (3, 8, 8)
    blob = torch.load(both["streamed"][0], weights_only=True)
    assert set(blob["train"]) == {"root", "paths", "size", "labels"}
    assert blob["train"]["paths"][0] == "train/c0/0.png"
    assert DatasetMeta.load(both["streamed"][1]).storage == "streamed"


def test_streamed_split_decodes_the_cached_values(both):
    meta = DatasetMeta.load(both["cached"][1])
    cached, labels = load_split(both["cached"][0], "train", meta)
    streamed, streamed_labels = load_split(both["streamed"][0], "train", meta, workers=2)
    assert is_streamed(streamed) and not is_streamed(cached)
    assert streamed.shape == tuple(cached.shape) and len(streamed) == 24
    assert torch.equal(labels, streamed_labels)
    idx = torch.tensor([23, 0, 7, 12])
    assert torch.equal(streamed[idx], cached[idx])


def test_streamed_stats_come_from_a_train_sample_when_not_given(tree, tmp_path):
    settings = {"source": "ImageFolder", "root": str(tree), "image_size": 8, "cache_limit_gb": 0}
    info = prepare_dataset.prepare(
        "tree", settings, str(tmp_path / "d.pt"), str(tmp_path / "m.json")
    )
    cached = prepare_dataset.prepare(
        "tree", {**settings, "cache_limit_gb": 2}, str(tmp_path / "c.pt"), str(tmp_path / "c.json")
    )
    assert info["stats_from"] == "train sample (24 images)"
    assert info["mean"] == pytest.approx(cached["mean"], abs=1e-6)  # the sample is all of it


# 24 images in batches of 5: the last batch is partial, as in the in-memory loop; DSA is
# applied per batch on the device, on both paths
PROTOCOL = tiny_protocol(
    "fixed", augmentation="dsa", batch_size=5, test_interval=1, lr=0.05, lr_grid=None
)


def train_real(data: Path, meta: Path, out: Path, workers: int) -> dict:
    protocol = PROTOCOL
    args = train.parser().parse_args(
        [
            *("--real", "--set", str(data), "--data", str(data), "--meta", str(meta)),
            *("--protocol", json.dumps(protocol), "--seed", "3", "--device", "cpu"),
            *("--workers", str(workers), "--out", str(out)),
        ]
    )
    train.main(args)
    return json.loads(out.read_text())


def test_training_on_a_streamed_split_equals_training_on_the_cache(both, tmp_path, one_thread):
    cached = train_real(*both["cached"][:2], tmp_path / "cached.json", workers=0)
    streamed = train_real(*both["streamed"][:2], tmp_path / "streamed.json", workers=2)
    curve = cached["runs"][0]["curve"]
    assert len(curve) == 3 and 0 <= curve[-1]["test"] <= 1
    # same seeded batch order, same pixels, same augmentation draws: the same run
    assert streamed["runs"][0]["curve"] == curve
    assert streamed["selected"] == cached["selected"]
    assert streamed["data"]["storage"] == "streamed" and cached["data"]["storage"] == "cached"
    assert streamed["data"]["mean"] == [0.5, 0.5, 0.5]  # recorded with every run


def test_corrupt_file_in_a_worker_is_reported_by_name(tree, tmp_path):
    meta = DatasetMeta(
        name="t",
        num_classes=3,
        channels=3,
        height=8,
        width=8,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        max_value=255.0,
        classes=list(CLASSES),
    )
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    images = StreamedImages(str(tmp_path), ["bad.png"], 8, meta.mean, meta.std, 255.0, workers=1)
    with pytest.raises(InputError, match=r"bad.png: field 'image': cannot be decoded"):
        images.raw(torch.tensor([0]))


def test_random_subset_of_a_streamed_dataset_matches_the_cached_one(both, tmp_path):
    outputs = {}
    for kind in ("cached", "streamed"):
        data, meta, _ = both[kind]
        out = tmp_path / kind
        args = random_subset.parser().parse_args(
            [
                *("--data", str(data), "--meta", str(meta), "--ipc", "2", "--round-seed", "0"),
                *("--out", str(out / "set.pt"), "--manifest", str(out / "set.json")),
                *("--png", str(out / "png"), "--workers", "1"),
            ]
        )
        random_subset.main(args)
        outputs[kind] = torch.load(out / "set.pt", weights_only=True)
    assert torch.equal(outputs["cached"]["images"], outputs["streamed"]["images"])
    info = outputs["streamed"]["info"]
    assert info["indices"] == outputs["cached"]["info"]["indices"]
    assert info["files"] == outputs["cached"]["info"]["files"]
    assert all(f.startswith("train/c") for f in info["files"])
