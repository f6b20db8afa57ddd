"""Reading score files for the leaderboard, the figures and the report. Every field they
use is checked: a file that cannot be read in full is an error naming the file, the field
and the fix (a leaderboard that ranked half a file would be wrong with exit 0). What can
be recomputed or shown as unknown (an older file's summary or standard error, a diverged
round's NaN) is named in `missing` instead, for the notes and the report.

A score file is what `stages/score.py` writes: `method`, `metric`, `dataset`, `ipc`,
`protocol_name`, `settings`, `protocols`, `seeds`, `rounds` (per round: `seed`, `terms`
{term: {acc, lr, epoch, run}} and the metric's quantities) and `summary` (mean/std over
rounds of each quantity and of each term's accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ddrank_steps import formulas, metric_registry, paths
from ddrank_steps.errors import InputError
from ddrank_steps.runtime.checked_read import (
    checked_field,
    checked_records,
    number,
    read_cached_json,
    rebuild_fix,
)


@dataclass(frozen=True, order=True)
class Group:
    """A leaderboard group: methods ranked against each other, since they are scored on
    the same dataset and IPC, by the same metric, under the same protocol."""

    dataset: str
    ipc: int
    metric: str
    protocol: str

    @property
    def label(self) -> str:
        return f"{self.dataset}/ipc{self.ipc}/{self.metric}/{self.protocol}"

    @property
    def figure(self) -> str:
        return paths.GROUP_FIGURE.format(
            dataset=self.dataset, ipc=self.ipc, metric=self.metric, protocol_name=self.protocol
        )


def group_of(record: dict) -> Group:
    """The group of a score file or of the planner's score spec (both carry these keys)."""
    return Group(
        str(record["dataset"]), int(record["ipc"]), record["metric"], record["protocol_name"]
    )


@dataclass
class Score:
    path: str
    method: str
    metric: str
    dataset: str = "?"
    ipc: int = 0
    protocol: str = "?"
    headline: str | None = None  # the metric's headline quantity (None: unknown metric)
    quantities: dict[str, dict] = field(default_factory=dict)  # name -> {mean, std, se}
    terms: dict[str, dict] = field(default_factory=dict)  # term -> {mean, std} of its acc
    rounds: list[dict] = field(default_factory=list)  # as in the file
    seeds: list[int] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    protocols: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # what the file lacks, in words
    diverged_terms: list[str] = field(default_factory=list)  # every LR diverged in a round
    real_recipe: dict | None = None  # which recipe trained real-hard, and whose it is
    set_warnings: list[str] = field(default_factory=list)  # doubtful value ranges of sets

    @property
    def group(self) -> Group:
        return Group(self.dataset, self.ipc, self.metric, self.protocol)

    def headline_by_seed(self) -> dict[int, float]:
        """Each round's headline value by its seed (NaN where the round lacks it)."""
        out = {}
        for i, r in enumerate(self.rounds):
            value = r.get(self.headline) if self.headline else None
            out[int(r.get("seed", i))] = formulas.as_float(value)
        return out

    def term_by_round(self, term: str) -> list[float]:
        return [formulas.as_float(r.get("terms", {}).get(term, {}).get("acc")) for r in self.rounds]

    def run_files(self) -> list[str]:
        """Every run file the score read, once, in round and term order."""
        seen = {}
        for r in self.rounds:
            for t in r.get("terms", {}).values():
                if isinstance(t, dict) and t.get("run"):
                    seen.setdefault(t["run"], None)
        return list(seen)


def read_score(path: str | Path) -> Score:
    """A score file as a Score. A file that cannot be read in full (damaged, cut short, a
    field missing or of the wrong kind) is an InputError naming the file, the field and the
    fix: a leaderboard must never rank what it could only half read. Only what can be
    recomputed or shown as unknown is tolerated and listed in `missing`: a summary (from
    the rounds), a standard error, a NaN headline (a diverged run)."""
    path = str(path)
    raw = read_cached_json(path)
    if not isinstance(raw, dict):
        raise InputError(path, "file", "is not a JSON object", rebuild_fix(path))
    text = {key: checked_field(raw, key, str, path, key) for key in ("method", "metric", "dataset")}
    score = Score(path, text["method"], text["metric"], dataset=text["dataset"])
    score.ipc = checked_field(raw, "ipc", int, path, "ipc")
    score.protocol = checked_field(raw, "protocol_name", str, path, "protocol_name")
    score.settings = checked_field(raw, "settings", dict, path, "settings")
    score.protocols = checked_field(raw, "protocols", dict, path, "protocols")
    quantity_names = _read_metric(score)
    _read_rounds(score, raw)
    if "summary" in raw:
        summary = checked_field(raw, "summary", dict, path, "summary")
    else:
        score.missing.append("field 'summary' (recomputed from the rounds)")
        summary = _summary_from_rounds(score.rounds, quantity_names)
    _read_quantities(score, summary, quantity_names)
    diverged = summary.get("diverged_terms") or []
    if not isinstance(diverged, list):
        raise InputError(path, "summary.diverged_terms", "is not a list", rebuild_fix(path))
    score.diverged_terms = [str(t) for t in diverged]
    score.real_recipe = raw.get("real_recipe") if isinstance(raw.get("real_recipe"), dict) else None
    score.set_warnings = [str(w) for w in summary.get("set_warnings") or []]
    _read_terms(score, summary)
    for q, stats in score.quantities.items():
        if not math.isfinite(stats["mean"]):
            score.missing.append(f"a finite {q} (NaN: a diverged run?)")
    return score


def _read_rounds(score: Score, raw: dict) -> None:
    """The per-round values (each round's seed, its terms' accuracies, LRs and run files,
    and the headline) and the seeds, every one checked."""
    path = score.path
    records = checked_records(raw, "rounds", path)
    for where, r in records:
        if "seed" in r:  # else the round's index, as files of older versions
            checked_field(r, "seed", int, path, f"{where}.seed")
        for term, t in checked_field(r, "terms", dict, path, f"{where}.terms").items():
            name = f"{where}.terms.{term}"
            number(checked_field(t, "acc", object, path, f"{name}.acc"), path, f"{name}.acc", True)
            number(t.get("lr"), path, f"{name}.lr", nullable=True)
            checked_field(t, "run", str, path, f"{name}.run")
        if score.headline:
            headline = checked_field(r, score.headline, object, path, f"{where}.{score.headline}")
            number(headline, path, f"{where}.{score.headline}", nullable=True)
    rounds = [r for _, r in records]
    score.rounds = rounds
    seeds = raw.get("seeds", [r.get("seed", i) for i, r in enumerate(rounds)])
    if not isinstance(seeds, list) or not all(isinstance(x, int) for x in seeds):
        raise InputError(path, "seeds", "is not a list of integers", rebuild_fix(path))
    score.seeds = seeds


def _read_metric(score: Score) -> tuple[str, ...]:
    """Set the headline from the metric registry; the metric's quantity names. A metric
    the registry lacks cannot be ranked: an error."""
    metric_info = metric_registry.METRICS.get(score.metric)
    if metric_info is None:
        known = ", ".join(sorted(metric_registry.METRICS))
        problem = f"'{score.metric}' is not a metric of this ddrank ({known})"
        raise InputError(score.path, "metric", problem, rebuild_fix(score.path))
    score.headline = metric_info.headline
    return metric_info.quantities


def _read_quantities(score: Score, summary: dict, quantity_names: tuple[str, ...]) -> None:
    """Mean, std and standard error of each of the metric's quantities."""
    for q in quantity_names:
        stats = checked_field(summary, q, dict, score.path, f"summary.{q}")
        values = {}
        for part in ("mean", "std", "se"):
            name = f"summary.{q}.{part}"
            if part == "se" and part not in stats:
                # NaN in score files from before the standard error was recorded
                score.missing.append(f"the standard error of {q}")
            elif part != "se":
                checked_field(stats, part, object, score.path, name)
            values[part] = formulas.as_float(number(stats.get(part), score.path, name, True))
        score.quantities[q] = values


def _read_terms(score: Score, summary: dict) -> None:
    """Mean and std over rounds of each term's accuracy."""
    terms = checked_field(summary, "terms", dict, score.path, "summary.terms")
    for t, stats in terms.items():
        name = f"summary.terms.{t}"
        checked_field(terms, t, dict, score.path, name)
        score.terms[t] = {
            part: formulas.as_float(number(stats.get(part), score.path, f"{name}.{part}", True))
            for part in ("mean", "std")
        }


def _summary_from_rounds(rounds: list[dict], quantities: tuple[str, ...]) -> dict:
    unknown = {"mean": None, "std": None, "se": None}  # a round is NaN: a diverged run
    summary: dict = {}
    for q in quantities:
        values = [formulas.as_float(r.get(q)) for r in rounds]
        summary[q] = formulas.mean_std(values) if all(map(math.isfinite, values)) else unknown
    names = {t for r in rounds for t in r["terms"]}
    summary["terms"] = {}
    for t in sorted(names):
        values = [formulas.as_float(r["terms"].get(t, {}).get("acc")) for r in rounds]
        finite = all(map(math.isfinite, values))
        summary["terms"][t] = formulas.mean_std(values) if finite else unknown
    return summary


def _names_from_path(path: str) -> tuple[str, str]:
    """Method and metric from a SCORE path (results/scores/<method>/<metric>.json)."""
    p = Path(path)
    return p.parent.name, p.stem
