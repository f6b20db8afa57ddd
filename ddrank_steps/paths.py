"""Every result path of the workflow, once: the planner fills them in and the rules
declare them as their outputs (`output: paths.RUN`), reading each other's through
`rules.<name>.output`.

Wildcards: `dataset`, `ipc`, `seed` (a round's seed), `kind` (reference set kind),
`method`, `set` (a set id: `rdm-ipc10`, `syn-<method>`; `real` too for a run's figure),
`protocol` (a run protocol's cache key), `teachers` (a teacher ensemble's key), `metric`,
`protocol_name` (a protocol's name in the config: a leaderboard group's). Logs are not
here: each is named once, in its rule's `log:`.

Figures are stems: the plot stages write each as `<stem>.svg` (embedded in both reports),
`<stem>.pdf` and `<stem>.png` (for papers), side by side.
"""

from __future__ import annotations

import functools
import re

# a prepared dataset: its cached (or indexed) splits and their metadata
DATASET = "results/datasets/{dataset}/data.pt"
DATASET_META = "results/datasets/{dataset}/meta.json"

# sets: a round's random subset (with its index manifest and a PNG copy), the reference
# sets, and a method's imported syn set
RDM_SET = "results/sets/{dataset}/rdm/ipc{ipc}/seed{seed}.pt"
RDM_MANIFEST = "results/sets/{dataset}/rdm/ipc{ipc}/seed{seed}.json"
RDM_PNG = "results/sets/{dataset}/rdm/ipc{ipc}/seed{seed}_png"
REFERENCE_SET = "results/sets/{dataset}/reference/ipc{ipc}/{kind}.pt"
SYN_SET = "results/sets/{dataset}/syn/{method}.pt"

# runs: one training job; real-hard runs also keep the selected weights (teachers)
RUN = "results/runs/{dataset}/{set}/{protocol}/seed{seed}.json"
REAL_RUN = "results/runs/{dataset}/real/{protocol}/seed{seed}.json"
REAL_CHECKPOINT = "results/runs/{dataset}/real/{protocol}/seed{seed}.pt"
# a known real-hard accuracy (`eval_full_data: false`), written as a run file
GIVEN_RUN = "results/runs/{dataset}/real-given/{protocol}/seed{seed}.json"

# mode-S soft labels of a set, by a teacher ensemble, per round
SOFT_LABELS = "results/soft_labels/{dataset}/{set}/{teachers}/seed{seed}.pt"

# scores and what people read
SCORE = "results/scores/{method}/{metric}.json"
LEADERBOARD = "results/leaderboard.csv"
REPORT = "results/report.html"

# figures (stems, see above): a leaderboard group's scores over rounds, a score's terms,
# a training run's curve per LR, a syn set beside a random subset of the same IPC
GROUP_FIGURE = "results/figures/groups/{dataset}/ipc{ipc}/{metric}/{protocol_name}/scores"
TERMS_FIGURE = "results/figures/scores/{method}/{metric}/terms"
RUN_FIGURE = "results/figures/runs/{dataset}/{set}/{protocol}/seed{seed}"
GALLERY_FIGURE = "results/figures/sets/{dataset}/{method}/gallery"


def figure_files(stem: str) -> dict[str, str]:
    """A figure's files by format, from its (filled-in) stem."""
    return {fmt: f"{stem}.{fmt}" for fmt in ("svg", "pdf", "png")}


def run_fields(run_path: str) -> dict[str, str]:
    """The dataset, set, protocol and seed of a run file (a RUN or REAL_RUN path)."""
    match = _pattern_regex(RUN).fullmatch(run_path)
    if match is None:
        raise ValueError(f"{run_path} is not a run file path ({RUN})")
    return match.groupdict()


def is_given_run(run_path: str) -> bool:
    """Whether a run file holds a known accuracy (GIVEN_RUN): nothing trained, so it has
    no LR curve to draw."""
    return _pattern_regex(GIVEN_RUN).fullmatch(run_path) is not None


def run_figure_of(run_path: str) -> str:
    """The stem of the LR-curve figure of a run file."""
    return RUN_FIGURE.format(**run_fields(run_path))


def run_checkpoint(run_path: str) -> str:
    """Where the training job of a run file keeps the checkpoint it resumes from: under
    results/checkpoints/, mirroring the run file's path (beside it, for a run file
    outside results/runs/). Not a rule output: the job removes it once the run file is
    written, and a rerun finds it when the job did not get that far."""
    runs, checkpoints = "results/runs/", "results/checkpoints/"
    head, found, tail = run_path.rpartition(runs)
    stem = tail.removesuffix(".json") if found else run_path.removesuffix(".json")
    return f"{head}{checkpoints}{stem}.pt" if found else f"{stem}.checkpoint.pt"


# Upper-case names in this module are path patterns only (tests/test_layout.py reads them).
@functools.cache
def _pattern_regex(pattern: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", pattern)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(regex)
