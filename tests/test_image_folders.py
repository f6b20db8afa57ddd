"""Image folders out: the random subsets' lossless PNG folders."""

from __future__ import annotations

import pytest
import torch
from test_cifar import write_cifar10

from ddrank_steps import prepare_dataset, random_subset
from ddrank_steps.png_folder import read_png_folder, write_png_folder

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
    prepare_dataset.prepare(
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
