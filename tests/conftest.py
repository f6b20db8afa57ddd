"""Fixtures shared by test modules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import prepared, write_tree


@pytest.fixture
def one_thread():
    """One intra-op thread, as the train stage runs (`--threads 1`): tiny nets gain nothing
    from more, and spinning threads are slow when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """A tiny ImageFolder tree (3 classes, 8 train and 4 test PNGs each)."""
    return write_tree(tmp_path_factory.mktemp("stream") / "tree")


@pytest.fixture(scope="session")
def both(tree, tmp_path_factory):
    """The tree prepared twice: cached as tensors and streamed from its files."""
    base = tmp_path_factory.mktemp("prepared")
    return {
        "cached": prepared(tree, base / "cached", 2.0),
        "streamed": prepared(tree, base / "streamed", 0.0),
    }


@pytest.fixture
def workdir(done_run, tmp_path) -> Path:
    """A copy of the module's `done_run` (a folder where the workflow has run to the end),
    for one test to change: the tests do not depend on their order."""
    copy = tmp_path / "work"
    shutil.copytree(done_run, copy, symlinks=True)
    return copy


@pytest.fixture(scope="module", autouse=True)
def no_slurm_controller_wait(request, tmp_path_factory):
    """A failing `scontrol` first on PATH for every module but the SLURM test's.

    The SLURM executor plugin runs `scontrol show config` whenever Snakemake starts, for any
    executor; with a SLURM client and no controller that waits about 9 s per start. A
    controller answers at once, so the stub stands for one; the SLURM test, which starts
    its own cluster, keeps the real command. Module scope so that it is in place before
    the module fixtures that run the workflow."""
    if shutil.which("scontrol") is None or request.node.get_closest_marker("slurm"):
        yield
        return
    folder = tmp_path_factory.mktemp("no-scontrol")
    stub = folder / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        yield
