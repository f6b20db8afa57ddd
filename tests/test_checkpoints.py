"""Checkpoints inside a training job (`training.checkpoints`): a group stopped after any
epoch (killed right after a checkpoint, or asked to stop by a signal) and resumed from its
checkpoint ends with the results of an uninterrupted group, bit for bit on the CPU, one LR
at a time and together, with augmentation, train_transforms and kept weights; a checkpoint
of another computation or a damaged one is named in the log and never resumed from."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny_protocol
from test_concurrent_lrs import LRS, TRAIN_TRANSFORMS, make_group, meta

from ddrank_steps import paths
from ddrank_steps.runtime import job_policy, preemption
from ddrank_steps.stages import train as train_stage
from ddrank_steps.training import checkpoints as checkpointing
from ddrank_steps.training.checkpoints import Checkpoints
from ddrank_steps.training.engine import train_group
from ddrank_steps.transforms.batches import BatchTransform

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]

EPOCHS = 5  # evaluation points at 2, 4 and 5: stops fall on both kinds of epoch
HEADER = {"protocol_key": "k", "seed": 3, "code": "c"}


class Killed(Exception):
    """Stands for a SIGKILL right after the `after`-th checkpoint was written."""


class KilledAfter(Checkpoints):
    def __init__(self, path, after: int):
        super().__init__(path, HEADER, minutes=0, device=torch.device("cpu"))
        self.left = after

    def after_epoch(self, epoch, evaluated, state):
        super().after_epoch(epoch, evaluated, state)
        self.left -= 1
        if self.left == 0:
            raise Killed


def p():
    out = tiny_protocol("grid", augmentation="dsa", epochs=EPOCHS, test_interval=2)
    out["lr_grid"] = LRS
    return out


def group():
    return make_group(p(), transform=BatchTransform(TRAIN_TRANSFORMS, meta(), "train"))


def train(concurrent: bool, checkpoints=None):
    return train_group(
        group(), LRS, show_progress=False, concurrent=concurrent, checkpoints=checkpoints
    )


def assert_same(a, b):
    (ra, best_a), (rb, best_b) = a, b
    assert best_a == best_b
    for x, y in zip(ra, rb, strict=True):
        assert (x.lr, x.curve, x.selected_epoch, x.acc) == (y.lr, y.curve, y.selected_epoch, y.acc)
        assert (x.state is None) == (y.state is None)
        if x.state is not None:
            assert all(torch.equal(x.state[k], y.state[k]) for k in x.state)


@pytest.fixture(scope="module")
def uninterrupted():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as `one_thread`, which a module fixture cannot use
    try:
        return {c: train(c) for c in (False, True)}
    finally:
        torch.set_num_threads(before)


# one at a time: killed inside the first LR (before an evaluation point), inside the
# second (on one), in the last; together: after a plain epoch and after an evaluation
CASES = [(False, 1), (False, EPOCHS + 2), (False, 2 * EPOCHS + 3), (True, 1), (True, 4)]


@pytest.mark.parametrize(("concurrent", "after"), CASES)
def test_killed_and_resumed_equals_uninterrupted(
    tmp_path, caplog, uninterrupted, concurrent, after
):
    path = tmp_path / "run.pt"
    with pytest.raises(Killed):
        train(concurrent, KilledAfter(path, after))
    assert path.is_file()
    caplog.set_level(logging.INFO)
    resumed = train(concurrent, Checkpoints(path, HEADER, 10, torch.device("cpu")))
    assert_same(resumed, uninterrupted[concurrent])
    epoch = (after - 1) % EPOCHS + 1 if not concurrent else after
    assert f"resumed from epoch {epoch}" in caplog.text


def test_a_stop_signal_checkpoints_at_the_end_of_the_epoch_and_resumes(tmp_path, uninterrupted):
    path = tmp_path / "run.pt"
    preemption.request("SIGUSR1")  # as if the signal came during the first epoch
    try:
        with pytest.raises(preemption.Stopped) as stop:
            train(False, Checkpoints(path, HEADER, 10, torch.device("cpu")))
    finally:
        preemption.reset()
    assert stop.value.epoch == 1 and path.is_file()
    resumed = train(False, Checkpoints(path, HEADER, 10, torch.device("cpu")))
    assert_same(resumed, uninterrupted[False])


@pytest.mark.parametrize("damage", ["other", "flipped", "truncated", "foreign"])
def test_an_unusable_checkpoint_is_named_and_training_starts_over(
    tmp_path, caplog, uninterrupted, damage
):
    path = tmp_path / "run.pt"
    with pytest.raises(Killed):
        train(False, KilledAfter(path, 3))
    data = path.read_bytes()
    header = HEADER
    if damage == "other":
        header = {**HEADER, "code": "another"}
    elif damage == "flipped":
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        torch.save({"model": {}}, path)
    caplog.set_level(logging.INFO)
    again = train(False, Checkpoints(path, header, 10, torch.device("cpu")))
    assert_same(again, uninterrupted[False])
    assert f"checkpoint {path}" in caplog.text and "training starts over" in caplog.text
    assert "resumed" not in caplog.text
    if damage == "other":
        assert "another computation (its code differ" in caplog.text


def test_remove_deletes_the_checkpoint(tmp_path):
    path = tmp_path / "a" / "run.pt"
    with pytest.raises(Killed):
        train(False, KilledAfter(path, 1))
    Checkpoints(path, HEADER, 10, torch.device("cpu")).remove()
    assert not path.exists()


def test_evaluation_points_are_written_only_when_their_cost_is_small():
    ckpt = Checkpoints("unused.pt", HEADER, 10, torch.device("cpu"))
    assert ckpt._due(evaluated=True) and not ckpt._due(evaluated=False)
    ckpt.cost = 1000.0  # a write that takes long waits for the interval
    assert not ckpt._due(evaluated=True)
    ckpt.interval = 0.0
    assert ckpt._due(evaluated=False)


def test_the_header_changes_with_inputs_protocol_and_how_the_run_trains(tmp_path):
    inputs = tmp_path / "set.pt"
    inputs.write_bytes(b"one")
    base = checkpointing.run_header(p(), "k", 3, LRS, [str(inputs)], device="cpu", together=False)
    assert base == checkpointing.run_header(
        p(), "k", 3, LRS, [str(inputs)], device="cpu", together=False
    )
    other_protocol = {**p(), "epochs": EPOCHS + 1}
    assert base != checkpointing.run_header(
        other_protocol, "k", 3, LRS, [str(inputs)], device="cpu", together=False
    )
    assert base != checkpointing.run_header(
        p(), "k", 3, LRS, [str(inputs)], device="cpu", together=True
    )
    inputs.write_bytes(b"two")
    assert base != checkpointing.run_header(
        p(), "k", 3, LRS, [str(inputs)], device="cpu", together=False
    )


def test_checkpoint_paths_mirror_the_run_files():
    run = paths.RUN.format(dataset="d", set="syn-m", protocol="abc", seed=0)
    assert paths.run_checkpoint(run) == "results/checkpoints/d/syn-m/abc/seed0.pt"
    assert paths.run_checkpoint("/w/results/runs/d/real/k/seed1.json") == (
        "/w/results/checkpoints/d/real/k/seed1.pt"
    )
    assert paths.run_checkpoint("out/run.json") == "out/run.checkpoint.pt"


@pytest.mark.parametrize("signum", preemption.SIGNALS)
def test_a_stop_signal_only_raises_the_flag(signum):
    before = signal.getsignal(signum)
    with preemption.catching():
        os.kill(os.getpid(), signum)
        assert preemption.requested() == signal.Signals(signum).name
    assert signal.getsignal(signum) is before and preemption.requested() is None


# --- the train stage ----------------------------------------------------------------------


def stage_args(data, meta, out, protocol) -> list[str]:
    return [
        *("--real", "--set", str(data), "--data", str(data), "--meta", str(meta)),
        *("--protocol", json.dumps(protocol), "--seed", "3", "--device", "cpu"),
        *("--out", str(out)),
    ]


def run_file(args: list[str]) -> dict:
    train_stage.main(train_stage.parser().parse_args(args))
    record = json.loads(Path(args[args.index("--out") + 1]).read_text())
    for r in record["runs"]:
        r.pop("seconds")
    return record


def test_the_stage_stops_on_sigusr1_under_a_shell_that_ignores_it_and_resumes(
    both, tmp_path, caplog
):
    """As under SLURM: the signal reaches the job's shell and the stage; the shell ignores
    it (job_policy's shell prefix), the stage checkpoints, exits 75, and its rerun resumes
    to the run file of an uninterrupted run."""
    data, meta, _ = both["cached"]
    protocol = tiny_protocol("fixed", epochs=400, test_interval=100, lr=0.01)
    out = tmp_path / "stopped" / "run.json"
    command = [
        sys.executable,
        "-m",
        "ddrank_steps.stages.train",
        *stage_args(data, meta, out, protocol),
    ]
    shell = job_policy.IGNORE_WARNING_SIGNAL + shlex.join(command)
    env = {**os.environ, job_policy.ENV_CHECKPOINT_MINUTES: "0", "PYTHONPATH": str(REPO)}
    job = subprocess.Popen(
        ["bash", "-c", shell], env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    checkpoint = Path(paths.run_checkpoint(str(out)))
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGUSR1)  # what SLURM does: every process of the step
    log = job.communicate(timeout=120)[1]
    assert job.returncode == preemption.EXIT_CODE, log[-3000:]
    assert checkpoint.is_file() and not out.exists()
    assert "exiting with 75" in log

    caplog.set_level(logging.INFO)
    resumed = run_file(stage_args(data, meta, out, protocol))
    assert "resumed from epoch" in caplog.text and not checkpoint.exists()
    fresh = run_file(stage_args(data, meta, tmp_path / "fresh" / "run.json", protocol))
    assert resumed["runs"] == fresh["runs"] and resumed["selected"] == fresh["selected"]
