"""Every result path of the workflow, once: the planner fills them in and the rules
declare them as their outputs (`output: paths.RUN`), reading each other's through
`rules.<name>.output`.

Wildcards: `dataset`, `ipc`, `seed` (a round's seed), `kind` (reference set kind),
`method`, `set` (a set id: `rdm-ipc10`, `syn-<method>`), `protocol` (a run protocol's cache
key), `teachers` (a teacher ensemble's key), `metric`. Logs are not here: each is named
once, in its rule's `log:`.
"""

from __future__ import annotations

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
