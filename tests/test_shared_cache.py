"""Lab-wide sharing through Snakemake's between-workflow cache (`--cache` with
$SNAKEMAKE_OUTPUT_CACHE): the cache folder is checked before any job
(ddrank_steps/runtime/shared_cache.py), and a second clone of ddrank at another path takes
every shared term from the cache and writes the same leaderboard."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_code_inputs import tiny_config

from ddrank_steps.runtime import shared_cache
from ddrank_steps.runtime.shared_cache import cache_problem

REPO = Path(__file__).resolve().parents[1]
# the log folders of the rules marked `cache: SHARED_CACHE` that the tiny config runs
# (train_real logs under train/<dataset>/real/)
SHARED_LOGS = ("prepare_dataset", "random_subset", "reference_set", "train")


# --- the cache folder, checked before any job ---------------------------------------------


def test_no_location_is_no_problem():
    assert cache_problem(None) is None
    assert cache_problem("") is None


def test_a_usable_folder_is_no_problem(tmp_path):
    assert cache_problem(str(tmp_path)) is None


def test_a_missing_folder_names_the_variable_and_how_to_create_it(tmp_path):
    why = cache_problem(str(tmp_path / "nowhere"))
    assert "SNAKEMAKE_OUTPUT_CACHE" in why and "does not exist" in why
    assert f"mkdir -p {tmp_path / 'nowhere'}" in why


def test_a_file_is_not_a_cache_folder(tmp_path):
    (tmp_path / "file").write_text("")
    assert "is not a folder" in cache_problem(str(tmp_path / "file"))


def test_an_unwritable_folder_is_refused(tmp_path, monkeypatch):
    # permission bits do not stop root: the writing test is what decides
    monkeypatch.setattr(shared_cache, "unwritable_reason", lambda folder: "Read-only file system")
    why = cache_problem(str(tmp_path))
    assert "not writable (Read-only file system)" in why and "chmod g+w" in why


def test_a_full_disk_is_refused(tmp_path):
    why = cache_problem(str(tmp_path), min_free=1 << 60)
    assert "MiB free" in why and "drop --cache" in why


# --- the workflow ---------------------------------------------------------------------------


def clone(tmp_path: Path, name: str) -> Path:
    """The workflow and the package at a path of their own, as a user's git clone."""
    repo = tmp_path / name
    for part in ("workflow", "ddrank_steps"):
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(REPO / part, repo / part, ignore=ignore)
    return repo


def run(repo: Path, workdir: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "workflow" / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    return subprocess.run(
        [*cmd, "--cores", "2", "--cache", *args], capture_output=True, text=True, env=env
    )


def project(tmp_path: Path, name: str, config: dict) -> Path:
    workdir = tmp_path / name
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def succeeded(proc: subprocess.CompletedProcess) -> str:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-6000:]
    return text


def ran_here(workdir: Path, logs: str) -> list[Path]:
    """The logs under results/logs/<logs>/ of the jobs that ran in this project: a job
    taken from the cache leaves its log empty (Snakemake creates it, no stage writes it)."""
    found = (workdir / "results" / "logs" / logs).rglob("*.log")
    return sorted(path for path in found if path.stat().st_size > 0)


@pytest.mark.workflow
def test_a_second_clone_takes_every_shared_term_from_the_cache(tmp_path):
    cache = tmp_path / "lab-cache"
    cache.mkdir()
    config = tiny_config()
    config["num_eval"] = 2  # two seeds: each must be its own entry

    first = project(tmp_path, "alice", config)
    succeeded(run(clone(tmp_path, "alice-ddrank"), first, cache))
    assert len(ran_here(first, "train/digits/real")) == 2 and ran_here(first, "random_subset")

    second = project(tmp_path, "bob", config)
    bob = clone(tmp_path, "bob-ddrank")
    succeeded(run(bob, second, cache))
    for logs in SHARED_LOGS:
        assert ran_here(second, logs) == [], logs
    leaderboard = "results/leaderboard.csv"
    assert (second / leaderboard).read_bytes() == (first / leaderboard).read_bytes()

    # taken from the cache: symlinks to its entries
    shared = ["datasets/digits/data.pt", "sets/digits/rdm/ipc10/seed1.pt"]
    assert all((second / "results" / f).resolve().parent == cache for f in shared)
    # one entry per job: no two seeds (or sets) of one protocol share a key
    runs = sorted((second / "results" / "runs").rglob("seed*.json"))
    targets = {path.resolve() for path in runs}
    assert len(runs) == 6 and all(path.is_symlink() for path in runs)  # 2 real, 2 rdm, 2 syn
    assert len(targets) == len(runs) and all(t.parent == cache for t in targets)
    # and nothing is left to do
    assert "Nothing to be done" in succeeded(run(bob, second, cache, "--dry-run"))


@pytest.mark.workflow
def test_a_missing_cache_folder_stops_the_run_before_any_job(tmp_path):
    workdir = project(tmp_path, "work", tiny_config())
    missing = tmp_path / "no-such-cache"
    proc = run(REPO, workdir, missing)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"SNAKEMAKE_OUTPUT_CACHE={missing} does not exist" in text, text[-3000:]
    assert not (workdir / "results" / "datasets").exists()  # no job ran
