"""Reading score files for the leaderboard, the figures and the report, tolerant of files
an older version wrote: a missing field is named in `missing`, never a crash, so the
workflow's last steps always finish and say what they could not show.

A score file is what `stages/score.py` writes: `method`, `metric`, `dataset`, `ipc`,
`protocol_name`, `settings`, `protocols`, `seeds`, `rounds` (per round: `seed`, `terms`
{term: {acc, lr, epoch, run}} and the metric's quantities) and `summary` (mean/std over
rounds of each quantity and of each term's accuracy).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ddrank_steps import formulas, metric_registry, paths
from ddrank_steps.runtime.checked_read import rebuild_fix


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
    """A score file as a Score; what it lacks is listed in `missing`. An unreadable file
    gives a Score named after its path with only `missing` filled in."""
    path = str(path)
    method, metric = _names_from_path(path)
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        unreadable = f"unreadable ({exc}); {rebuild_fix(path)}"
        return Score(path, method, metric, missing=[unreadable])
    if not isinstance(raw, dict):
        return Score(path, method, metric, missing=["not a JSON object"])
    score = Score(path, raw.get("method", method), raw.get("metric", metric))
    _read_identity(score, raw)
    _read_rounds(score, raw)
    quantity_names = _read_metric(score)
    summary = raw.get("summary") if isinstance(raw.get("summary"), dict) else None
    if summary is None:
        score.missing.append("field 'summary' (recomputed from the rounds)")
        summary = _summary_from_rounds(score.rounds, quantity_names)
    _read_quantities(score, summary, quantity_names)
    score.diverged_terms = [str(t) for t in summary.get("diverged_terms") or []]
    score.real_recipe = raw.get("real_recipe") if isinstance(raw.get("real_recipe"), dict) else None
    score.set_warnings = [str(w) for w in summary.get("set_warnings") or []]
    _read_terms(score, summary)
    for q, stats in score.quantities.items():
        if not math.isfinite(stats["mean"]):
            score.missing.append(f"a finite {q} (NaN: a diverged run?)")
    return score


def _read_identity(score: Score, raw: dict) -> None:
    """The group fields (dataset, ipc, protocol name), the settings and the protocols."""
    for key, attr in (("dataset", "dataset"), ("ipc", "ipc"), ("protocol_name", "protocol")):
        if key in raw:
            setattr(score, attr, int(raw[key]) if key == "ipc" else str(raw[key]))
        else:
            score.missing.append(f"field '{key}'")
    score.settings = raw.get("settings") or {}
    score.protocols = raw.get("protocols") or {}


def _read_rounds(score: Score, raw: dict) -> None:
    """The per-round values and their seeds (the file's, else each round's own)."""
    score.rounds = [r for r in raw.get("rounds") or [] if isinstance(r, dict)]
    if not score.rounds:
        score.missing.append("field 'rounds' (no per-round values: no paired comparison)")
    score.seeds = list(
        raw.get("seeds") or [int(r.get("seed", i)) for i, r in enumerate(score.rounds)]
    )


def _read_metric(score: Score) -> tuple[str, ...]:
    """Set the headline from the metric registry; the metric's quantity names (none for a
    metric not in the registry)."""
    metric_info = metric_registry.METRICS.get(score.metric)
    if metric_info is None:
        score.missing.append(f"metric '{score.metric}' is not in the registry")
        return ()
    score.headline = metric_info.headline
    return metric_info.quantities


def _read_quantities(score: Score, summary: dict, quantity_names: tuple[str, ...]) -> None:
    for q in quantity_names:
        stats = summary.get(q)
        if isinstance(stats, dict) and "mean" in stats:
            score.quantities[q] = {
                "mean": formulas.as_float(stats["mean"]),
                "std": formulas.as_float(stats.get("std")),
                # NaN in score files from before the standard error was recorded
                "se": formulas.as_float(stats.get("se")),
            }
        else:
            score.missing.append(f"quantity '{q}'")


def _read_terms(score: Score, summary: dict) -> None:
    terms = summary.get("terms")
    if isinstance(terms, dict):
        score.terms = {
            t: {"mean": formulas.as_float(s.get("mean")), "std": formulas.as_float(s.get("std"))}
            for t, s in terms.items()
            if isinstance(s, dict)
        }
    else:
        score.missing.append("term accuracies ('summary.terms')")


def _summary_from_rounds(rounds: list[dict], quantities: tuple[str, ...]) -> dict:
    summary: dict = {}
    for q in quantities:
        values = [formulas.as_float(r.get(q)) for r in rounds]
        if values and all(math.isfinite(v) for v in values):
            summary[q] = formulas.mean_std(values)
    names = {t for r in rounds for t in r.get("terms", {})}
    summary["terms"] = {}
    for t in sorted(names):
        values = [formulas.as_float(r.get("terms", {}).get(t, {}).get("acc")) for r in rounds]
        if values and all(math.isfinite(v) for v in values):
            summary["terms"][t] = formulas.mean_std(values)
    return summary


def _names_from_path(path: str) -> tuple[str, str]:
    """Method and metric from a SCORE path (results/scores/<method>/<metric>.json)."""
    p = Path(path)
    return p.parent.name, p.stem
