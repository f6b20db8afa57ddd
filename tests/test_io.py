"""Atomic writes: results land whole, with the permissions the umask asks for."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from ddrank_steps.data.png_folder import write_png_folder
from ddrank_steps.runtime.atomic_write import atomic_dir, save_torch, write_json, write_text


@pytest.fixture
def umask():
    """Run the test under a given umask, restoring the process's own afterwards."""
    before = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)]
)
def test_written_files_and_folders_honour_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    write_text(tmp_path / "a.txt", "x")
    save_torch(tmp_path / "a.pt", {"x": torch.zeros(2)})
    for name in ("a.json", "a.txt", "a.pt"):
        assert mode(tmp_path / name) == file_mode, name
    write_png_folder(
        torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), tmp_path / "png"
    )
    assert mode(tmp_path / "png") == dir_mode
    assert mode(tmp_path / "png" / "00000") == dir_mode
    assert mode(tmp_path / "png" / "00000" / "00000.png") == file_mode


def test_a_private_umask_keeps_results_private(tmp_path, umask):
    umask(0o077)
    write_json(tmp_path / "a.json", {})
    with atomic_dir(tmp_path / "d"):
        pass
    assert mode(tmp_path / "a.json") == 0o600
    assert mode(tmp_path / "d") == 0o700
