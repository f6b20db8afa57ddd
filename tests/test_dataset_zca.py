"""Dataset-level ZCA end to end: prepare_dataset fits it on the train split, every split
loads whitened with that fit, rdm subsets follow, syn_set checks imported sets."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddrank_steps.data import dataset_store
from ddrank_steps.data.datasets import prepare_settings
from ddrank_steps.data.syn_import import import_set
from ddrank_steps.data.training_inputs import DatasetMeta, load_split, load_zca
from ddrank_steps.data.zca import fit_zca
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.runtime.atomic_write import read_json
from ddrank_steps.stages import random_subset

IPC = 3


def covariance(x: torch.Tensor) -> torch.Tensor:
    return torch.cov(x.reshape(len(x), -1).double().T)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("zca")
    data, meta_path = out / "data.pt", out / "meta.json"
    settings = {"source": "digits", "val_fraction": 0.2, "zca": True, "zca_eps": 0.1}
    dataset_store.prepare("digits", settings, str(data), str(meta_path))
    return data, meta_path, DatasetMeta.load(meta_path)


def raw(data: Path, split: str) -> torch.Tensor:
    return torch.load(data, weights_only=True)[split]["images"]


def test_meta_records_the_zca_and_data_holds_the_fit(prepared):
    data, meta_path, meta = prepared
    written = read_json(meta_path)
    assert written["zca"] is True and written["zca_eps"] == 0.1
    assert written["zca_input"] == "pixels"
    assert written["zca_reference"]["whitened"] < written["zca_reference"]["pixel"]
    assert (meta.zca, meta.zca_eps, meta.zca_input) == (True, 0.1, "pixels")
    zca = load_zca(data, meta)
    assert zca.eps == 0.1 and zca.shape == (1, 8, 8)


def test_fit_is_on_the_train_split_in_0_1_pixels_without_normalisation(prepared):
    data, _, meta = prepared
    refit = fit_zca(raw(data, "train").float() / meta.max_value, eps=0.1)
    stored = load_zca(data, meta)
    assert torch.allclose(stored.mean, refit.mean, atol=1e-6)
    assert torch.allclose(stored.transform, refit.transform, atol=1e-4)


def test_train_split_loads_whitened(prepared):
    data, _, meta = prepared
    images, labels = load_split(data, "train", meta)
    assert images.shape[1:] == (1, 8, 8) and len(labels) == len(images)
    assert images.mean(0).abs().max() < 1e-4
    # kornia's formula whitens its fit data to exactly I - eps T^2
    t = load_zca(data, meta).transform.double()
    expected = torch.eye(64, dtype=torch.float64) - 0.1 * t @ t
    assert (covariance(images) - expected).abs().max() < 1e-4


@pytest.mark.parametrize("split", ["test", "val"])
def test_other_splits_load_whitened_with_the_train_fit(prepared, split):
    data, _, meta = prepared
    images, _ = load_split(data, split, meta)
    expected = load_zca(data, meta).apply(raw(data, split).float() / meta.max_value)
    assert torch.allclose(images, expected, atol=1e-5)
    # not refitted on this split: its mean is not removed exactly
    assert images.mean(0).abs().max() > 1e-3


def test_rdm_subset_is_in_zca_space(prepared, tmp_path):
    data, meta_path, meta = prepared
    out, manifest = tmp_path / "rdm.pt", tmp_path / "rdm.json"
    args = argparse.Namespace(
        data=str(data),
        meta=str(meta_path),
        ipc=IPC,
        round_seed=0,
        out=str(out),
        manifest=str(manifest),
        png=None,
        workers=0,
    )
    random_subset.main(args)
    subset = torch.load(out, weights_only=True)
    train, _ = load_split(data, "train", meta)
    idx = torch.tensor(read_json(manifest)["indices"])
    assert torch.allclose(subset["images"], train[idx], atol=1e-5)


def test_zca_keys_are_no_cache_key_when_off():
    off = {"source": "digits", "zca": False, "zca_eps": 0.1}
    assert prepare_settings(off) == {"source": "digits"}
    on = {"source": "digits", "zca": True, "zca_eps": 0.1}
    assert prepare_settings(on) == on


def test_meta_written_before_zca_loads_without_it():
    old = {
        "name": "d",
        "num_classes": 10,
        "channels": 1,
        "height": 8,
        "width": 8,
        "mean": [0.3],
        "std": [0.4],
        "max_value": 16.0,
        "classes": [str(c) for c in range(10)],
    }
    meta = DatasetMeta.from_dict(old)
    assert meta.zca is False and meta.zca_eps is None


def test_streamed_dataset_with_zca_is_a_config_error(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = tmp_path / "tree" / split / name
            folder.mkdir(parents=True)
            for j in range(3):
                array = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
                Image.fromarray(array).save(folder / f"{j}.png")
    settings = {
        "source": "ImageFolder",
        "root": str(tmp_path / "tree"),
        "image_size": 8,
        "cache_limit_gb": 0.0,
        "zca": True,
    }
    with pytest.raises(ConfigError, match=r"zca needs a cached dataset.*streamed"):
        dataset_store.prepare("tree", settings, str(tmp_path / "d.pt"), str(tmp_path / "m.json"))


# --- syn_set -------------------------------------------------------------------------


def class_sorted(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.cat([images[labels == c][:IPC] for c in range(10)])


def save(path: Path, obj) -> str:
    torch.save(obj, path)
    return str(path)


def test_syn_set_in_pixel_space_warns_loudly_with_the_numbers(prepared, tmp_path, caplog):
    data, _, meta = prepared
    labels = torch.load(data, weights_only=True)["train"]["labels"]
    pixels = class_sorted(raw(data, "train").float() / meta.max_value, labels)
    normalised = (pixels - pixels.mean()) / pixels.std()  # the usual non-ZCA space
    path = save(tmp_path / "x.pt", normalised)
    with caplog.at_level("WARNING", logger="ddrank.zca"):
        with pytest.warns(UserWarning, match="does NOT look ZCA-whitened"):
            blob = import_set("m", path, None, None, IPC, meta, zca=load_zca(data, meta))
    assert "does NOT look ZCA-whitened" in caplog.text and "threshold" in caplog.text
    assert blob["info"]["zca_check"]["looks_whitened"] is False
    assert torch.equal(blob["images"], normalised)  # a warning, not an error


def test_syn_set_in_zca_space_passes_quietly(prepared, tmp_path, caplog):
    data, _, meta = prepared
    images, labels = load_split(data, "train", meta)
    path = save(tmp_path / "x.pt", class_sorted(images, labels))
    with caplog.at_level("WARNING", logger="ddrank.zca"), warnings.catch_warnings():
        warnings.simplefilter("error")
        blob = import_set("m", path, None, None, IPC, meta, zca=load_zca(data, meta))
    assert "ZCA" not in caplog.text
    assert blob["info"]["zca_check"]["looks_whitened"] is True


def test_uint8_syn_set_is_refused_for_a_zca_dataset(prepared, tmp_path):
    data, _, meta = prepared
    path = save(tmp_path / "x.pt", torch.zeros(10 * IPC, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(InputError, match="uint8 pixels cannot be in ZCA space"):
        import_set("m", path, None, None, IPC, meta, zca=load_zca(data, meta))


def test_image_folder_syn_set_is_refused_for_a_zca_dataset(prepared, tmp_path):
    data, _, meta = prepared
    folder = tmp_path / "set" / "00000"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(folder / "0.png")
    with pytest.raises(InputError, match="cannot be in ZCA space"):
        import_set("m", str(tmp_path / "set"), None, None, IPC, meta, zca=load_zca(data, meta))


def test_import_set_of_a_zca_dataset_needs_the_fit(prepared, tmp_path):
    _, _, meta = prepared
    path = save(tmp_path / "x.pt", torch.zeros(10 * IPC, 1, 8, 8))
    with pytest.raises(ValueError, match="needs its ZCA fit"):
        import_set("m", path, None, None, IPC, meta)


def test_reference_set_of_a_zca_dataset_is_not_checked(prepared, tmp_path, caplog):
    # k-means centroids of whitened digits are smoother than single images and can fail
    # the heuristic although they are in ZCA space: no check, no warning.
    data, _, meta = prepared
    images, labels = load_split(data, "train", meta)
    means = torch.cat(
        [images[labels == c].mean(0, keepdim=True).repeat(IPC, 1, 1, 1) for c in range(10)]
    )
    path = save(tmp_path / "kmeans.pt", means)
    with caplog.at_level("WARNING", logger="ddrank.zca"), warnings.catch_warnings():
        warnings.simplefilter("error")
        blob = import_set("m", path, None, None, IPC, meta, reference_set=True)
    assert "zca_check" not in blob["info"] and "ZCA" not in caplog.text
