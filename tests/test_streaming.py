"""Streamed vs cached real data: the prepare stage's choice, lazy decoding, and training on a
streamed split (DataLoader workers, the engine's seeded order) giving the cached result."""

from __future__ import annotations

import pytest
import torch
from helpers import TREE_CLASSES, run_train_stage, tiny_protocol

from ddrank_steps.data import dataset_store
from ddrank_steps.data.streaming import StreamedImages, is_streamed
from ddrank_steps.data.training_inputs import DatasetMeta, load_split
from ddrank_steps.errors import InputError
from ddrank_steps.stages import random_subset


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
    info = dataset_store.prepare("tree", settings, str(tmp_path / "d.pt"), str(tmp_path / "m.json"))
    cached = dataset_store.prepare(
        "tree", {**settings, "cache_limit_gb": 2}, str(tmp_path / "c.pt"), str(tmp_path / "c.json")
    )
    assert info["stats_from"] == "train sample (24 images)"
    assert info["mean"] == pytest.approx(cached["mean"], abs=1e-6)  # the sample is all of it


# 24 images in batches of 5: the last batch is partial, as in the in-memory loop; DSA is
# applied per batch on the device, on both paths
PROTOCOL = tiny_protocol(
    "fixed", augmentation="dsa", batch_size=5, test_interval=1, lr=0.05, lr_grid=None
)


def test_training_on_a_streamed_split_equals_training_on_the_cache(both, tmp_path, one_thread):
    cached = run_train_stage(*both["cached"][:2], tmp_path / "cached.json", PROTOCOL, workers=0)
    streamed = run_train_stage(
        *both["streamed"][:2], tmp_path / "streamed.json", PROTOCOL, workers=2
    )
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
        classes=list(TREE_CLASSES),
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
