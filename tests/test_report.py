"""The leaderboard's groups and paired comparisons, the figures and the report, on score
and run files built here with known answers (no training)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from ddrank_steps import metric_registry, paths
from ddrank_steps.errors import InputError
from ddrank_steps.reporting import paired
from ddrank_steps.reporting.figure_output import save
from ddrank_steps.reporting.run_figures import run_curves
from ddrank_steps.reporting.score_records import read_score
from ddrank_steps.runtime.atomic_write import write_json
from ddrank_steps.stages import leaderboard, report
from ddrank_steps.stages.score import summarise


def score_file(
    root: Path,
    method: str,
    syn_acc: list[float],
    *,
    metric: str = "lrs_hard",
    dataset: str = "digits",
    ipc: int = 10,
    protocol: str = "p",
    rdm_acc: list[float] | None = None,
) -> str:
    """A score file as the score stage writes it, for per-round syn accuracies: real-hard
    0.99 and rdm-any (default 0.80) shared by every method, as in one group's rounds."""
    entry = metric_registry.get(metric)
    settings = {"weight": 0.5, "protocol": protocol, "lr_rule": "reference"}
    rdm_acc = rdm_acc or [0.80] * len(syn_acc)
    rounds = []
    for i, (syn, rdm) in enumerate(zip(syn_acc, rdm_acc, strict=True)):
        run = f"results/runs/{dataset}/syn-{method}/abcdef0123/seed{i}.json"
        accs = {"real-hard": 0.99, "syn-hard": syn, "syn-any": syn, "rdm-any": rdm}
        terms = {t: {"acc": a, "lr": 0.01, "epoch": 10, "run": run} for t, a in accs.items()}
        rounds.append({"round": i, "seed": i, "terms": terms, **entry.compute(accs, settings)})
    data = {
        "method": method,
        "metric": metric,
        "dataset": dataset,
        "ipc": ipc,
        "protocol_name": protocol,
        "settings": settings,
        "protocols": {"syn-any": {"select": "best"}},
        "seeds": list(range(len(syn_acc))),
        "rounds": rounds,
        "summary": summarise(rounds, entry),
    }
    path = root / "results" / "scores" / method / f"{metric}.json"
    write_json(path, data)
    return str(path)


# --- the paired comparison --------------------------------------------------------------


def test_clearly_separated_rounds_are_ordered():
    c = paired.compare(
        {0: 0.9, 1: 0.91, 2: 0.93, 3: 0.9, 4: 0.92}, {0: 0.8, 1: 0.8, 2: 0.82, 3: 0.79, 4: 0.8}
    )
    assert c.separated and c.rounds == 5 and c.p < 0.001
    assert c.ci_low > 0 and c.diff_mean == pytest.approx(0.11)


def test_identical_rounds_are_tied():
    same = {0: 0.9, 1: 0.85, 2: 0.88}
    c = paired.compare(same, dict(same))
    assert not c.separated and c.diff_mean == 0 and c.p == 1.0


def test_a_noisy_small_gap_is_tied_and_a_single_round_cannot_separate():
    c = paired.compare({0: 0.90, 1: 0.80, 2: 0.86}, {0: 0.85, 1: 0.84, 2: 0.85})
    assert not c.separated and 0.05 <= c.p <= 1 and c.ci_low < 0 < c.ci_high
    one = paired.compare({0: 0.9}, {0: 0.1})
    assert not one.separated and one.rounds == 1 and math.isnan(one.p) and "no test" in one.note


def test_rounds_pair_by_seed_and_skip_nan():
    c = paired.compare({0: 0.9, 1: math.nan, 2: 0.9, 7: 0.5}, {0: 0.8, 1: 0.8, 2: 0.8})
    assert c.rounds == 2 and c.diff_mean == pytest.approx(0.1)
    assert c.separated  # the same gap in both rounds: no spread, a consistent order


# --- the leaderboard's groups -----------------------------------------------------------


def test_separated_methods_are_ordered_and_identical_ones_tied(tmp_path):
    files = [
        score_file(tmp_path, "strong", [0.95, 0.96, 0.94, 0.95, 0.96]),
        score_file(tmp_path, "twin_a", [0.85, 0.87, 0.84, 0.86, 0.85]),
        score_file(tmp_path, "twin_b", [0.85, 0.87, 0.84, 0.86, 0.85]),
    ]
    table = leaderboard.rows(files).set_index("method")
    assert table.loc["strong", "lrs_hard_rank"] == 1
    assert table.loc["strong", "lrs_hard_tied_with"] == ""
    assert table.loc["strong", "lrs_hard_vs_next_p"] < 0.05
    assert table.loc["strong", "lrs_hard_vs_next_diff_mean"] > 0
    # the twins have equal scores: ranked by name, and tied with each other
    assert table.loc["twin_a", "lrs_hard_rank"] == 2 and table.loc["twin_b", "lrs_hard_rank"] == 3
    assert table.loc["twin_a", "lrs_hard_tied_with"] == "#3"
    assert table.loc["twin_b", "lrs_hard_tied_with"] == "#2"
    assert table.loc["twin_a", "lrs_hard_vs_next_diff_mean"] == 0
    assert table.loc["twin_b", "tied_with"] == "#2"


def test_ranks_are_computed_within_each_dataset_and_ipc(tmp_path):
    files = [
        score_file(tmp_path, "a10", [0.90, 0.91], ipc=10),
        score_file(tmp_path, "b10", [0.80, 0.81], ipc=10),
        score_file(tmp_path, "a50", [0.70, 0.71], ipc=50, rdm_acc=[0.6, 0.6]),
        score_file(tmp_path, "b50", [0.95, 0.96], ipc=50, rdm_acc=[0.6, 0.6]),
        score_file(tmp_path, "c", [0.5, 0.5], dataset="other"),
    ]
    table = leaderboard.rows(files)
    got = {r.method: (r.group, r.rank) for r in table.itertuples()}
    assert got == {
        "a10": ("digits/ipc10/lrs_hard/p", 1),
        "b10": ("digits/ipc10/lrs_hard/p", 2),
        "b50": ("digits/ipc50/lrs_hard/p", 1),
        "a50": ("digits/ipc50/lrs_hard/p", 2),
        "c": ("other/ipc10/lrs_hard/p", 1),
    }
    # rows ordered by group, then rank; nothing compares across groups
    assert list(table["method"]) == ["a10", "b10", "b50", "a50", "c"]
    assert math.isnan(table.set_index("method").loc["b10", "lrs_hard_vs_next_p"])


def test_a_method_without_the_top_metric_is_ranked_in_its_own_group(tmp_path):
    files = [
        score_file(tmp_path, "hard", [0.9, 0.9]),
        score_file(tmp_path, "acc_only", [0.99, 0.99], metric="accuracy"),
    ]
    table = leaderboard.rows(files).set_index("method")
    assert table.loc["acc_only", "group"] == "digits/ipc10/accuracy/p"
    assert table.loc["acc_only", "rank"] == 1 and table.loc["hard", "rank"] == 1


# --- bad input never breaks the last steps ----------------------------------------------


def old_and_odd_scores(root: Path) -> list[str]:
    """A score file of an older run (no summary, no standard error), one with a NaN round
    (a diverged run), and a method alone in its group with one round."""
    old = score_file(root, "old", [0.9, 0.92])
    data = json.loads(Path(old).read_text())
    del data["summary"]
    write_json(old, data)
    nan = score_file(root, "diverged", [0.9, 0.91])
    data = json.loads(Path(nan).read_text())
    data["rounds"][1]["lrs"] = None  # JSON has no NaN: what an older writer left
    data["summary"]["lrs"]["mean"] = None
    write_json(nan, data)
    alone = score_file(root, "alone", [0.8], ipc=1)
    return [old, nan, alone]


def test_old_and_odd_score_files_are_read_with_what_they_lack(tmp_path):
    old, nan, alone = (read_score(p) for p in old_and_odd_scores(tmp_path))
    assert any("summary" in m for m in old.missing) and old.quantities["lrs"]["mean"] > 0
    assert math.isnan(nan.headline_by_seed()[1]) and any("finite lrs" in m for m in nan.missing)
    assert alone.rounds and not alone.missing
    table = leaderboard.rows([old.path, nan.path, alone.path]).set_index("method")
    assert "summary" in table.loc["old", "notes"]
    assert table.loc["alone", "rank"] == 1


def test_report_builds_from_odd_scores_and_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = [str(Path(p).relative_to(tmp_path)) for p in old_and_odd_scores(tmp_path)]
    lb = tmp_path / "results" / "leaderboard.csv"
    leaderboard.main(leaderboard.parser().parse_args(["--csv", str(lb), *files]))
    out = tmp_path / "results" / "report.html"
    report.main(report.parser().parse_args(["--leaderboard", str(lb), "--out", str(out), *files]))
    text = out.read_text()
    assert "What is missing" in text and "field &#x27;summary&#x27;" in text
    assert "figure not drawn" in text  # no plot stage ran here
    assert "One method in this group" in text
    assert text.count("<table>") == 2  # one table per group (old and diverged share one)


# --- a score file that cannot be read in full is refused, never ranked -----------------


def cut_and_broken_scores(root: Path) -> dict[str, tuple[str, str]]:
    """Damaged copies of one score file -> (the path, the field its error must name)."""
    good = Path(score_file(root, "good", [0.9, 0.92]))
    text = good.read_text()
    data = json.loads(text)
    cases = {"truncated": (text[:300], "file"), "a list": ("[1, 2]", "file")}
    for name, change, where in (
        ("no protocol_name", lambda d: d.pop("protocol_name"), "protocol_name"),
        ("ipc a string", lambda d: d.update(ipc="10"), "ipc"),
        ("no rounds", lambda d: d.update(rounds=[]), "rounds"),
        ("acc a string", lambda d: d["rounds"][1]["terms"]["syn-hard"].update(acc="x"), "acc"),
        ("no headline", lambda d: d["rounds"][0].pop("lrs"), "rounds[0].lrs"),
        ("summary cut", lambda d: d["summary"].pop("lrs"), "summary.lrs"),
        ("unknown metric", lambda d: d.update(metric="lrs_typo"), "metric"),
    ):
        changed = json.loads(text)
        change(changed)
        cases[name] = (json.dumps(changed), where)
    out = {}
    for i, (name, (content, where)) in enumerate(cases.items()):
        path = root / "results" / "scores" / f"bad{i}" / "lrs_hard.json"
        path.parent.mkdir(parents=True)
        path.write_text(content)
        out[name] = (str(path), where)
    assert data["protocol_name"] == "p"
    return out


def test_a_score_file_that_cannot_be_read_in_full_is_an_error_naming_it(tmp_path):
    for name, (path, where) in cut_and_broken_scores(tmp_path).items():
        with pytest.raises(InputError) as info:
            read_score(path)
        message = str(info.value)
        assert message.startswith(f"{path}: field '"), name
        assert where in info.value.field, (name, message)
        assert f"--forcerun {path}" in message, name


def test_the_leaderboard_and_the_report_refuse_a_damaged_score(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = score_file(tmp_path, "other", [0.8, 0.81])
    damaged = Path(score_file(tmp_path, "cut", [0.9, 0.92]))
    damaged.write_text(damaged.read_text()[:300])
    files = [good, str(damaged)]
    lb = tmp_path / "results" / "leaderboard.csv"
    with pytest.raises(InputError, match=rf"{damaged}: field 'file': is damaged"):
        leaderboard.main(leaderboard.parser().parse_args(["--csv", str(lb), *files]))
    assert not lb.exists()
    lb.write_text("method\nother\n")
    out = tmp_path / "results" / "report.html"
    with pytest.raises(InputError, match=rf"{damaged}: field 'file'"):
        report.main(
            report.parser().parse_args(["--leaderboard", str(lb), "--out", str(out), *files])
        )
    assert not out.exists()
    lb.write_text("rank,me")  # a leaderboard cut short: the report names it
    with pytest.raises(InputError, match=rf"{lb}: field 'method'"):
        report.main(report.parser().parse_args(["--leaderboard", str(lb), "--out", str(out), good]))


# --- figures on awkward input -----------------------------------------------------------


def test_run_curves_with_a_diverged_lr_and_a_run_file_without_curves(tmp_path):
    run_path = paths.RUN.format(dataset="d", set="rdm-ipc1", protocol="0123456789", seed=0)
    curve = [{"epoch": 1, "test": 0.5}, {"epoch": 2, "test": 0.6}]
    run = {
        "runs": [
            {"lr": 0.01, "curve": curve},
            {"lr": 0.1, "curve": [{"epoch": 1, "test": float("nan")}]},
        ],
        "selected": {"lr": 0.01, "epoch": 2, "acc": 0.6},
        "select": "best",
    }
    files = paths.figure_files(str(tmp_path / "run"))
    save(run_curves(run, run_path), files)
    svg = Path(files["svg"]).read_text()
    assert svg.startswith("<?xml") and Path(files["pdf"]).stat().st_size > 0
    save(run_curves({}, run_path), paths.figure_files(str(tmp_path / "empty")))
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_group_and_terms_figures_of_one_method_with_one_round(tmp_path):
    from ddrank_steps.reporting.score_figures import group_scores, score_terms

    s = read_score(score_file(tmp_path, "alone", [0.8]))
    save(group_scores(s.group, [s]), paths.figure_files(str(tmp_path / "g")))
    save(score_terms(s), paths.figure_files(str(tmp_path / "t")))
    assert (tmp_path / "g.svg").stat().st_size > 0 and (tmp_path / "t.svg").stat().st_size > 0


@pytest.mark.parametrize("channels", [1, 3])
def test_gallery_of_one_and_three_channel_sets(tmp_path, channels):
    from ddrank_steps.data.training_inputs import DatasetMeta
    from ddrank_steps.reporting.gallery_figure import gallery_figure, to_pixels

    meta = DatasetMeta(
        "toy", 3, channels, 6, 6, [0.5] * channels, [0.25] * channels, 255.0, ["a", "b", "c"]
    )
    labels = torch.arange(3).repeat_interleave(2)
    blob = {"images": torch.randn(6, channels, 6, 6), "labels": labels}
    pixels = to_pixels(blob["images"], meta, None)
    assert pixels.shape == (6, 6, 6, channels) and pixels.min() >= 0 and pixels.max() <= 1
    save(
        gallery_figure({"syn": blob, "rdm": blob}, meta, None, "toy"),
        paths.figure_files(str(tmp_path / "g")),
    )
    assert (tmp_path / "g.png").stat().st_size > 0


def test_gallery_undoes_zca_whitening():
    from ddrank_steps.data.training_inputs import DatasetMeta
    from ddrank_steps.data.zca import fit_zca
    from ddrank_steps.reporting.gallery_figure import to_pixels

    meta = DatasetMeta(
        "toy", 2, 1, 4, 4, [0.0], [1.0], 255.0, ["a", "b"], zca=True, zca_input="pixels"
    )
    pixels = torch.rand(64, 1, 4, 4)
    zca = fit_zca(pixels, eps=0.1)
    shown = to_pixels(zca.apply(pixels[:5]), meta, zca)
    assert torch.allclose(
        torch.from_numpy(shown).permute(0, 3, 1, 2).float(), pixels[:5], atol=1e-4
    )


def test_report_embeds_every_figure_as_svg_without_fetching_anything(tmp_path, monkeypatch):
    from ddrank_steps.reporting.score_figures import group_scores, score_terms

    monkeypatch.chdir(tmp_path)
    files = [score_file(Path("."), m, v) for m, v in (("a", [0.9, 0.92]), ("b", [0.8, 0.81]))]
    scores = [read_score(f) for f in files]
    save(group_scores(scores[0].group, scores), paths.figure_files(scores[0].group.figure))
    for s in scores:
        save(
            score_terms(s),
            paths.figure_files(paths.TERMS_FIGURE.format(method=s.method, metric=s.metric)),
        )
    lb = "results/leaderboard.csv"
    leaderboard.main(leaderboard.parser().parse_args(["--csv", lb, *files]))
    report.main(
        report.parser().parse_args(["--leaderboard", lb, "--out", "results/report.html", *files])
    )
    text = Path("results/report.html").read_text()
    assert text.count("src='data:image/svg+xml;base64,") == 3
    assert not re.search(r"(src|href)=['\"]https?:", text) and "<script" not in text
    assert "href='figures/groups/digits/ipc10/lrs_hard/p/scores.pdf'" in text
    assert pd.read_csv(lb)["rank"].tolist() == [1, 2]


def test_two_ipcs_and_two_datasets_plan_one_group_figure_each(tmp_path):
    """The DAG of a config with two IPCs on digits and a second dataset: a group figure per
    (dataset, IPC, metric, protocol), each drawn from its own methods' scores only."""
    import yaml
    from helpers import dry_run, job_counts

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config["datasets"]["digits2"] = {"source": "digits", "split_seed": 1}
    hard = {"lrs_hard": {"protocol": "digits-dsa"}}
    config["methods"] = {
        "a10": {"dataset": "digits", "ipc": 10, "images": "reference:random", "metrics": hard},
        "b10": {"dataset": "digits", "ipc": 10, "images": "reference:herding", "metrics": hard},
        "a5": {"dataset": "digits", "ipc": 5, "images": "reference:kmeans", "metrics": hard},
        "c10": {"dataset": "digits2", "ipc": 10, "images": "reference:kmeans", "metrics": hard},
    }
    config["real_protocols"]["digits2-ConvNet-3"] = config["real_protocols"]["digits-ConvNet-3"]
    text = dry_run(tmp_path, config)
    jobs = job_counts(text)
    assert jobs["plot_group"] == 3 and jobs["plot_terms"] == 4 and jobs["plot_gallery"] == 4
    group_jobs = re.findall(
        r"rule plot_group:\n\s+input: ([^\n]*)\n\s+output: (\S+)\.svg", text, re.MULTILINE
    )
    inputs = {out: sorted(re.findall(r"results/scores/(\w+)/", ins)) for ins, out in group_jobs}
    assert inputs == {
        "results/figures/groups/digits/ipc10/lrs_hard/digits-dsa/scores": ["a10", "b10"],
        "results/figures/groups/digits/ipc5/lrs_hard/digits-dsa/scores": ["a5"],
        "results/figures/groups/digits2/ipc10/lrs_hard/digits-dsa/scores": ["c10"],
    }
