"""The Plan: the jobs of the DAG as data, and the questions the rules ask of it.

`builder.build_plan` fills a Plan from a validated config; the workflow keeps it between
runs (stored_plan.py), so a run whose config and inputs did not change loads it and
imports no torch at all. So a Plan is plain, picklable data, and everything here is plain
Python: the rules call these queries while Snakemake builds the DAG, once per job.

What a Plan holds: every run protocol under its cache key (keys.py), every planned run
(its file, and what it trains), every score with its terms per round, the teacher
ensembles, the settings each prepared dataset depends on, and the paths the build looked
at (reads.py). Result paths come from `paths`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ddrank_steps import paths
from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.keys import SetId, teachers_key
from ddrank_steps.planning.reads import Reads

# the folder every result lies under; anything else a run reads is the user's own file
RESULTS_ROOT = Path(paths.DATASET).parts[0] + "/"


@dataclass
class Plan:
    config: dict
    seeds: list[int] = field(default_factory=list)
    protocols: dict[str, dict] = field(default_factory=dict)  # key -> run protocol
    teacher_sets: dict[str, list] = field(default_factory=dict)  # key -> resolved teachers
    # where each teacher comes from, in words (teacher_plan.py): logged, and printed by
    # `ddrank import-config`
    teacher_notes: dict[str, str] = field(default_factory=dict)
    scores: dict[tuple[str, str], dict] = field(default_factory=dict)  # (method, metric)
    sets: dict[str, SetId] = field(default_factory=dict)  # set wildcard -> set
    # run file -> (dataset, set wildcard, protocol key, seed): what each planned run trains
    runs: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)
    # dataset -> the settings its prepared cache depends on (datasets.prepare_settings),
    # kept here so the rules read them without importing the dataset loaders (torch)
    dataset_settings: dict[str, dict] = field(default_factory=dict)
    # every path the build looked at, with its state then: what the stored plan keys on
    reads: Reads = field(default_factory=Reads, repr=False)

    def score_targets(self) -> list[str]:
        return [paths.SCORE.format(method=m, metric=k) for (m, k) in self.scores]

    def cached_results(self) -> list[str]:
        """Every result file the scores are made from, down to the prepared datasets.

        Rule `all` asks for them, not only for the leaderboard: Snakemake treats a missing
        intermediate file as fine while the files made from it are present and newer, so a
        run file deleted by hand (or by Snakemake, when the job that reads it failed) would
        otherwise never be rebuilt, nor the scores and leaderboard made from it. Requested,
        it is rebuilt, and everything downstream of it with it.
        """
        found = set(self.score_targets())
        for path, (dataset, set_name, key, seed) in self.runs.items():
            found.add(path)
            found.update(dataset_paths(dataset))
            set_id = self.sets[set_name]
            if set_id.kind == "rdm":
                found.update(
                    pattern.format(dataset=dataset, ipc=set_id.ipc, seed=seed)
                    for pattern in (paths.RDM_SET, paths.RDM_MANIFEST, paths.RDM_PNG)
                )
            elif set_id.kind == "syn":
                found.add(self.set_file(dataset, set_name, seed))
                images = self.syn_images_input(set_id.method)
                if images.startswith(RESULTS_ROOT):  # a reference set, not the user's file
                    found.add(images)
            for value in self.label_inputs(dataset, set_name, key, seed).values():
                found.update(p for p in _as_list(value) if p.startswith(RESULTS_ROOT))
        return sorted(found)

    def score_inputs(self, method: str, metric: str) -> list[str]:
        spec = self.scores[(method, metric)]
        return sorted({p for r in spec["rounds"] for p in r["terms"].values()})

    def method(self, name: str) -> dict:
        return self.config["methods"][name]

    def run_protocol_of(self, key: str) -> dict:
        if key not in self.protocols:
            raise ConfigError(
                f"no protocol in the config has key {key}; the runs under results/runs/ may "
                "be of an earlier config"
            )
        return self.protocols[key]

    def syn_images_input(self, name: str) -> str:
        m = self.method(name)
        images = m["images"]
        if images.startswith("reference:"):
            kind = images.split(":", 1)[1]
            return paths.REFERENCE_SET.format(dataset=m["dataset"], ipc=m["ipc"], kind=kind)
        return images

    def set_file(self, dataset: str, set_name: str, seed: int) -> str | None:
        """The file of a set for one round (None for the real split, read from the dataset)."""
        set_id = self.sets[set_name]
        if set_id.kind == "rdm":
            return paths.RDM_SET.format(dataset=dataset, ipc=set_id.ipc, seed=seed)
        if set_id.kind == "syn":
            return paths.SYN_SET.format(dataset=dataset, method=set_id.method)
        return None

    @staticmethod
    def teacher_paths(teachers: list[dict], dataset: str, seed: int) -> list[str]:
        """Checkpoint of each teacher for one round: its file, or that seed's real-hard run
        (none for a pretrained teacher, whose weights come from the local model cache)."""
        return [
            t["path"]
            if t["source"] == "file"
            else paths.REAL_CHECKPOINT.format(dataset=dataset, protocol=t["key"], seed=seed)
            for t in teachers
            if t["source"] != "pretrained"
        ]

    def label_inputs(self, dataset: str, set_name: str, key: str, seed: int) -> dict:
        """What a run reads its targets from, by its label source: the teachers'
        checkpoints (mode M) or the soft_labels stage's file (mode S from teachers)."""
        protocol = self.protocols[key]
        source = protocol["label_source"]
        if source == "teachers":
            return {"teachers": self.teacher_paths(protocol["teachers"], dataset, seed)}
        if source == "teacher_logits":
            teachers = teachers_key(protocol["teachers"])
            return {
                "soft_labels": paths.SOFT_LABELS.format(
                    dataset=dataset, set=set_name, teachers=teachers, seed=seed
                )
            }
        return {}  # hard labels, or soft labels stored in the set itself


def dataset_paths(dataset: str) -> list[str]:
    return [paths.DATASET.format(dataset=dataset), paths.DATASET_META.format(dataset=dataset)]


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]
