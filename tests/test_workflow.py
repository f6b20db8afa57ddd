"""The workflow as a user drives it: dry-runs, a tiny end-to-end run, and reruns.

A tiny copy of the default config (few epochs, two rounds, two LRs) runs once in a
temporary directory; each later test works on its own copy of that directory, so
the tests do not depend on their order.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers import job_counts, snakemake_command, write_config

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def tiny_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["num_eval"] = 2
    for protocol in config["protocols"].values():
        protocol.update(epochs=4, test_interval=2, step_size=2, lr_grid=[0.01, 0.1])
    for real in config["real_protocols"].values():
        real.update(epochs=2, test_interval=1, step_size=1)
    return config


def snakemake(
    workdir: Path, *args: str, check: bool = True, configfile: Path | None = None
) -> subprocess.CompletedProcess:
    cmd = snakemake_command(workdir, *args, configfile=configfile)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path) -> dict[str, int]:
    """Rule -> job count of a dry-run (empty when there is nothing to do)."""
    proc = snakemake(workdir, "--dry-run")
    return job_counts(proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("tiny")
    write_config(workdir, tiny_config())
    snakemake(workdir)
    return workdir


def test_default_config_dry_runs(tmp_path):
    proc = snakemake(tmp_path, "--dry-run", configfile=REPO / "config" / "config.yaml")
    text = proc.stdout + proc.stderr
    assert "leaderboard" in text
    # per round: 3 methods x (syn-hard, syn-soft, syn-naug) + rdm under the same 3 protocols;
    # LRS-soft's syn-hard, ARS's aug terms and accuracy reuse those runs
    assert re.search(r"^train\s+36$", text, re.MULTILINE), text[-3000:]
    assert re.search(r"^train_real\s+3$", text, re.MULTILINE), text[-3000:]


def test_tiny_run_writes_leaderboard_with_fractions_and_scores(done_run):
    table = pd.read_csv(done_run / "results" / "leaderboard.csv")
    assert sorted(table["method"]) == ["herding", "kmeans", "random"]
    for col in ("lrs_hard_lrs_mean", "lrs_hard_lrs_std", "lrs_hard_hlr_mean", "lrs_hard_ior_mean"):
        assert col in table
    assert table["lrs_hard_lrs_mean"].between(0, 100).all()
    assert table["lrs_hard_hlr_mean"].between(-1, 1).all()
    assert table["lrs_hard_ior_mean"].between(-1, 1).all()
    acc_cols = [c for c in table if c.endswith("_acc_mean")]
    assert {"lrs_hard_real-hard_acc_mean", "lrs_hard_rdm-any_acc_mean"} <= set(acc_cols)
    for col in acc_cols:
        assert table[col].between(0, 1).all(), col
    assert (table["lrs_hard_rounds"] == 2).all()
    assert (table["lrs_hard_seeds"] == "0;1").all()
    assert list(table["rank"]) == [1, 2, 3]
    for col in ("lrs_soft_lrs_mean", "ars_ars_mean", "accuracy_acc_mean"):
        assert col in table
    assert table["lrs_soft_lrs_mean"].between(0, 100).all()
    assert table["ars_ars_mean"].between(0, 100).all()
    assert table["accuracy_acc_mean"].between(0, 1).all()
    assert (done_run / "results" / "report.html").read_text().startswith("<!doctype html>")


def test_score_file_records_every_term_seed_lr_protocol_and_versions(done_run):
    import json

    score = json.loads((done_run / "results/scores/kmeans/lrs_hard.json").read_text())
    assert score["seeds"] == [0, 1]
    assert score["data"]["shape"] == [1, 8, 8] and score["data"]["storage"] == "cached"
    assert len(score["data"]["mean"]) == len(score["data"]["std"]) == 1
    assert len(score["rounds"]) == 2
    for r in score["rounds"]:
        assert set(r["terms"]) == {"real-hard", "syn-hard", "syn-any", "rdm-any"}
        for term in r["terms"].values():
            assert 0 <= term["acc"] <= 1
            assert term["lr"] > 0
        assert r["lrs"] == pytest.approx(
            100 * (2.718281828459045 ** r["alpha"] - 0.36787944117144233) / 2.3504023872876028
        )
    assert score["protocols"]["syn-any"]["epochs"] == 4
    assert score["protocols"]["real-hard"]["lr"] == 0.05
    assert score["settings"] == {
        "protocol": "digits-dsa",
        "weight": 0.5,
        "lr_rule": "reference",
        "eval_full_data": True,
    }
    assert "torch" in score["versions"]


def test_every_job_wrote_a_log(done_run):
    logs = list((done_run / "results" / "logs").rglob("*.log"))
    rules = {p.relative_to(done_run / "results" / "logs").parts[0] for p in logs}
    assert {"prepare_dataset", "random_subset", "reference_set", "syn_set", "train"} <= rules
    assert {"score", "leaderboard.log"} <= rules


def test_rdm_and_real_runs_are_shared_across_methods(done_run):
    runs = done_run / "results" / "runs" / "digits"
    sets = {p.name for p in runs.iterdir()}
    assert sets == {"real", "rdm-ipc10", "syn-herding", "syn-kmeans", "syn-random"}
    # rdm under 3 protocols (hard+DSA, soft+DSA, soft without DSA) and one real-hard
    # protocol, two seeds each: trained once for 3 methods and 4 metrics
    assert len(list((runs / "rdm-ipc10").rglob("seed*.json"))) == 3 * 2
    assert len(list((runs / "real").rglob("seed*.json"))) == 2
    assert len(list((runs / "real").rglob("seed*.pt"))) == 2  # the teachers


def test_no_change_rerun_does_nothing(workdir):
    assert planned_jobs(workdir) == {}


def gpu_counts(dry_run_text: str) -> dict[str, set[int]]:
    """Rule -> the `gpu` resource values its jobs declare, from a dry-run."""
    found: dict[str, set[int]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_text):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        gpu = re.search(r"resources: .*?\bgpu=(\d+)", block)
        if rule and gpu:
            found.setdefault(rule[1], set()).add(int(gpu[1]))
    return found


def test_jobs_per_gpu_counts_a_tiny_job_as_one_slot_and_real_hard_as_whole_gpus(tmp_path):
    """1 GPU, jobs_per_gpu 4 (`--resources gpu=4`): four tiny runs share the device; a
    real-hard job takes all four slots."""
    config = tiny_config()
    config["resources"] = {"train_gpus": 1, "jobs_per_gpu": 4}
    write_config(tmp_path, config)
    proc = snakemake(tmp_path, "--dry-run", "--resources", "gpu=4")
    assert gpu_counts(proc.stdout + proc.stderr) == {"train": {1}, "train_real": {4}}


def test_sharing_gpus_reruns_nothing_and_reaches_the_lease(workdir, monkeypatch):
    """jobs_per_gpu and train_gpus say how jobs share the machine, never what they
    compute; a job that does run takes one slot of a (fake) GPU, told the slot count by
    the workflow."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["resources"] = {"train_gpus": 1, "jobs_per_gpu": 2}
    write_config(workdir, config)
    assert planned_jobs(workdir) == {}

    monkeypatch.setenv("DDRANK_GPUS", "0")  # a fake one-GPU machine: the lease, not CUDA
    monkeypatch.setenv("DDRANK_GPU_LEASE_DIR", str(workdir / "leases"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    run = next((workdir / "results" / "runs").glob("*/rdm-*/*/seed0.json"))
    run.unlink()
    snakemake(workdir, "--resources", "gpu=2")
    log = workdir / "results" / "logs" / "train" / run.relative_to(workdir / "results" / "runs")
    assert (
        "CUDA_VISIBLE_DEVICES=0 (1 of 2 slots of 1 of 1 GPUs" in log.with_suffix(".log").read_text()
    )


def test_concurrent_lrs_reruns_nothing_and_trains_the_same(workdir):
    """A resource, not a key: switching the LRs to train together plans no job, and a
    job redone that way writes the same curves and selection (the CPU fallback is bit for
    bit the same arithmetic)."""
    config = tiny_config()
    config["resources"] = {**config.get("resources", {}), "concurrent_lrs": True}
    write_config(workdir, config)
    assert planned_jobs(workdir) == {}
    run_file = sorted((workdir / "results" / "runs").rglob("rdm-ipc10/*/seed*.json"))[0]
    before = yaml.safe_load(run_file.read_text())  # JSON is YAML
    snakemake(workdir, "--force", str(run_file.relative_to(workdir)))
    after = yaml.safe_load(run_file.read_text())
    assert after["selected"] == before["selected"]
    assert [r["curve"] for r in after["runs"]] == [r["curve"] for r in before["runs"]]
    relative = run_file.relative_to(workdir / "results" / "runs").with_suffix(".log")
    log = workdir / "results" / "logs" / "train" / relative
    assert "the 2 LRs train together on cpu" in log.read_text()


def test_adding_a_method_runs_only_its_jobs(workdir):
    # A user's distilled set on disk, with its own learning rate.
    images = torch.randn(100, 1, 8, 8)
    torch.save({"images": images, "lr": 0.01}, workdir / "my_set.pt")
    config = tiny_config()
    config["methods"]["mine"] = {
        "dataset": "digits",
        "ipc": 10,
        "images": "my_set.pt",
        "metrics": {"lrs_hard": {"protocol": "digits-dsa"}},
    }
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    # its import, its syn run per round, its score and the leaderboard; no rdm or real job;
    # its own figures (a curve per run, its terms, its gallery), its group's figure (no
    # other group's) and the report
    assert jobs == {
        "syn_set": 1,
        "train": 2,
        "score": 1,
        "leaderboard": 1,
        "plot_run": 2,
        "plot_terms": 1,
        "plot_group": 1,
        "plot_gallery": 1,
        "report": 1,
        "all": 1,
    }
    snakemake(workdir)
    table = pd.read_csv(workdir / "results" / "leaderboard.csv")
    assert "mine" in set(table["method"])
    assert planned_jobs(workdir) == {}


def test_adding_a_round_runs_only_the_new_seed(workdir):
    config = tiny_config()
    config["num_eval"] = 3
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    # seed 2: one rdm subset; 3 methods x 3 syn runs + 3 rdm runs; one real-hard run;
    # every score and the leaderboard; the new runs' curves, every score's and group's
    # figure and the report (the galleries show the first round: not redrawn)
    assert jobs == {
        "random_subset": 1,
        "train": 12,
        "train_real": 1,
        "score": 12,
        "leaderboard": 1,
        "plot_run": 13,
        "plot_terms": 12,
        "plot_group": 4,
        "report": 1,
        "all": 1,
    }


def test_changing_the_weight_rescores_without_training(workdir):
    config = tiny_config()
    metrics = config["methods"]["kmeans"]["metrics"] = dict(config["methods"]["kmeans"]["metrics"])
    metrics["lrs_hard"] = {**metrics["lrs_hard"], "weight": 0.8}
    write_config(workdir, config)
    assert planned_jobs(workdir) == {
        "score": 1,
        "leaderboard": 1,
        "plot_terms": 1,
        "plot_group": 1,
        "report": 1,
        "all": 1,
    }


def test_editing_a_protocol_keeps_real_hard(workdir):
    config = tiny_config()
    config["protocols"]["digits-dsa"]["epochs"] = 6
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    # syn and rdm runs have a new key; real-hard has its own protocol and is kept
    assert jobs["train"] == 2 * (3 + 1)
    assert "random_subset" not in jobs and "prepare_dataset" not in jobs


def test_bad_config_key_stops_before_any_job(workdir):
    config = tiny_config()
    config["protocols"]["digits-dsa"]["epocs"] = 3
    write_config(workdir, config)
    proc = snakemake(workdir, "--dry-run", check=False)
    assert proc.returncode != 0
    assert "epocs" in proc.stdout + proc.stderr


def test_unknown_model_is_a_config_error(workdir):
    config = tiny_config()
    config["protocols"]["digits-dsa"]["model"] = "ConvNet-3-XX"
    write_config(workdir, config)
    proc = snakemake(workdir, "--dry-run", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "protocols.digits-dsa" in text and "XX" in text


def test_failing_job_names_file_and_reason_and_keeps_other_results(workdir):
    torch.save(torch.randn(100, 3, 8, 8), workdir / "bad_set.pt")  # digits have 1 channel
    config = tiny_config()
    config["methods"]["bad"] = {
        "dataset": "digits",
        "ipc": 10,
        "images": "bad_set.pt",
        "metrics": {"lrs_hard": {"protocol": "digits-dsa"}},
    }
    write_config(workdir, config)
    before = {p: p.stat().st_mtime for p in (workdir / "results" / "runs").rglob("*.json")}
    proc = snakemake(workdir, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "bad_set.pt: field 'images'" in text
    assert "expected (N, 1, 8, 8)" in text
    log = (workdir / "results/logs/syn_set/digits/bad.log").read_text()
    assert "bad_set.pt" in log and "Traceback" not in log
    assert not (workdir / "results/sets/digits/syn/bad.pt").exists()
    after = {p: p.stat().st_mtime for p in before}
    assert after == before  # nothing already computed was lost or redone


def test_a_method_with_every_metric_reuses_rdm_real_and_teachers(workdir):
    torch.save({"images": torch.randn(100, 1, 8, 8), "lr": 0.01}, workdir / "my_set.pt")
    config = tiny_config()
    config["methods"]["mine"] = {
        "dataset": "digits",
        "ipc": 10,
        "images": "my_set.pt",
        "metrics": copy.deepcopy(config["methods"]["kmeans"]["metrics"]),
    }
    write_config(workdir, config)
    # per round: syn-hard at its own lr (LRS-hard), syn-hard on the grid (LRS-soft, as the
    # reference), syn-soft and syn-naug at its own lr; nothing for rdm, real or teachers
    assert planned_jobs(workdir) == {
        "syn_set": 1,
        "train": 4 * 2,
        "score": 4,
        "leaderboard": 1,
        "plot_run": 4 * 2,
        "plot_terms": 4,
        "plot_group": 4,
        "plot_gallery": 1,
        "report": 1,
        "all": 1,
    }


def test_mode_s_runs_through_the_soft_label_stage(workdir):
    config = tiny_config()
    config["protocols"]["digits-kd"]["soft_label_mode"] = "S"
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    # per round: teacher logits for the rdm subset and for each of the 3 syn sets
    assert jobs["soft_labels"] == 4 * 2
    assert "train_real" not in jobs  # the teachers are the real-hard runs already trained
    snakemake(workdir)
    labels = list((workdir / "results" / "soft_labels" / "digits").rglob("seed*.pt"))
    assert len(labels) == 8
    blob = torch.load(labels[0], weights_only=True)
    assert blob["soft_labels"].shape == (100, 10)
    table = pd.read_csv(workdir / "results" / "leaderboard.csv")
    assert table["lrs_soft_lrs_mean"].between(0, 100).all()


def test_transform_lists_run_through_the_workflow_and_reach_real_hard(workdir):
    config = tiny_config()
    lists = {
        "train_transforms": [{"name": "RandomCrop", "args": {"size": 8, "padding": 1}}],
        "test_transforms": [
            {"name": "CenterCrop", "args": {"size": 6}},
            {"name": "Pad", "args": {"padding": 1}},
        ],
    }
    config["protocols"]["digits-dsa"].update(lists)
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    # per round, LRS-hard's 3 syn runs and its rdm run, and a real-hard run of its own:
    # tested on the same framed images (LRS-soft's real-hard, tested plainly, is kept)
    assert jobs["train"] == 2 * (3 + 1) and jobs["train_real"] == 2
    snakemake(workdir)
    score = yaml.safe_load((workdir / "results/scores/kmeans/lrs_hard.json").read_text())
    for term in score["protocols"].values():
        assert term["test_transforms"] == lists["test_transforms"]
    real = score["rounds"][0]["terms"]["real-hard"]
    run = yaml.safe_load((workdir / real["run"]).read_text())  # JSON is YAML
    assert run["protocol"]["test_transforms"] == lists["test_transforms"]
    assert "train_transforms" not in run["protocol"]  # the real recipe sets none
    table = pd.read_csv(workdir / "results" / "leaderboard.csv")
    assert table["lrs_hard_lrs_mean"].between(0, 100).all()


def figure_count(done_run: Path) -> int:
    """Figures of the tiny run: 4 groups (one per metric), 12 scores' terms, a curve per
    run file, a gallery per method."""
    runs = len(list((done_run / "results" / "runs").rglob("seed*.json")))
    return 4 + 12 + runs + 3


def test_report_has_a_table_per_group_and_every_figure(done_run):
    html = (done_run / "results" / "report.html").read_text()
    assert html.count("<table>") == 4
    assert html.count("src='data:image/svg+xml;base64,") == figure_count(done_run)
    assert "figure not drawn" not in html and "What is missing" not in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    table = pd.read_csv(done_run / "results" / "leaderboard.csv")
    assert set(table["group"]) == {"digits/ipc10/lrs_hard/digits-dsa"}
    assert sorted(table["lrs_hard_rank"]) == [1, 2, 3]
    assert set(table["ars_group"]) == {"digits/ipc10/ars/digits-kd"}
    figures = done_run / "results" / "figures"
    for fmt in ("svg", "pdf", "png"):
        assert (figures / "groups/digits/ipc10/lrs_hard/digits-dsa" / f"scores.{fmt}").is_file()
        assert (figures / "sets/digits/kmeans" / f"gallery.{fmt}").is_file()
        assert (figures / "scores/kmeans/ars" / f"terms.{fmt}").is_file()


def test_report_loads_in_headless_chromium(done_run, tmp_path):
    from browser import dump_dom, loaded_images, require_chromium, screenshot
    from matplotlib.image import imread

    chromium = require_chromium()
    page = done_run / "results" / "report.html"
    seen = loaded_images(chromium, page, tmp_path)
    assert seen == {"images": figure_count(done_run), "broken": [], "tables": 4}
    dom = dump_dom(chromium, page)
    assert dom.count("<table>") == 4 and "digits/ipc10/lrs_hard/digits-dsa" in dom
    pixels = imread(screenshot(chromium, page, tmp_path / "report.png"))
    assert pixels.std() > 0.05  # text and figures, not a blank page


def test_snakemake_report_shows_the_figures_with_captions(workdir):
    from browser import dump_dom, require_chromium

    snakemake(workdir, "--report", "report.html")
    page = workdir / "report.html"
    text = page.read_text()
    # captions, rendered with each figure's wildcards
    assert "Why kmeans's lrs_hard is what it is." in text
    assert "Leaderboard group digits, IPC 10," in text
    assert text.count("gallery.svg") >= 3
    chromium = require_chromium()
    dom = re.sub(r"<(script|style)\b.*?</\1>", "", dump_dom(chromium, page), flags=re.S)
    # the page rendered its menu of categories, and the workflow description (its Jinja
    # filled in from the config)
    for category in ("1. Leaderboard", "2. Leaderboard groups", "4. Training runs", "5. Sets"):
        assert category in dom, category
    assert "over 2 round(s)" in dom
