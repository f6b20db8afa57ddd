"""Training: the engine that trains a group of runs sharing a set and a protocol
(`engine`), and what it is made of: the group and its results (`group`), a run's start-up
and steps (`run_steps`), its evaluation and selection (`evaluation`), the LRs of a group
trained together (`together`), arithmetic precision (`precision`), optimisers and
schedules (`optimisers`), soft-label losses (`losses`), teachers (`teachers`), a run's
targets from its label source (`label_targets`) and DDP under torchrun (`distributed`).

A library layer: may import data, models, augment, transforms, runtime and the core
modules; never planning, stages or api.
"""
