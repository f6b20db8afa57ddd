"""From a validated config to the jobs of the DAG: which runs each score needs, and
under which cache key.

The Snakefile calls this module while it builds the DAG, so importing it is plain
Python: torch is imported only by `build_plan`, to check model, augmentation and transform
names. The workflow stores the Plan between runs (plan_cache.py), so a run whose config
and inputs did not change loads it and imports no torch at all.

What each metric needs comes from the metric registry (`metric_registry`): the planner
gives every metric a `MetricRequest` and the helpers `arm` and `real_arm`, and turns the
(set, run protocol) pairs the metric returns into runs. Result paths come from `paths`.

Cache keys. A run's result depends on its set, its *run protocol*, its seed and the
dataset; its path `results/runs/{dataset}/{set}/{key}/seed{seed}.json` holds exactly
those. The key is a short hash of the canonical run protocol: the protocol with the
LR resolved (a grid, a fixed LR, or the method's own LR stored in its set) and with
nothing that does not change the run (not its name, not the metric's weight). So
two metrics or methods that need the same run share one file, and editing one
protocol only changes the keys that depend on it.

The label recipe of a run is decided here, once (`add_label_recipe`), and carried in its
run protocol as `label_source`: the rules, the train stage and the engine read it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from ddrank_steps import metric_registry, paths
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.models import canonical_model_name, canonical_options, pretrained_classes
from ddrank_steps.planning.set_size import set_images, set_processes
from ddrank_steps.protocol_defaults import (
    UNNAMED_PRECISION,
    UNNAMED_SELECT,
    precision_of,
    protocol_defaults,
)
from ddrank_steps.seeding import round_seeds

REFERENCE_SET_KINDS = ("random", "herding", "kmeans")
KEY_LENGTH = 10
REFERENCE_REAL_PROTOCOLS_FILE = Path(__file__).with_name("reference_real_protocols.yaml")
REFERENCE_REAL_ACCURACIES_FILE = Path(__file__).with_name("reference_real_accuracies.yaml")


@cache
def reference_real_protocols() -> dict[str, dict]:
    """The reference's real-data training table, keyed "{dataset}-{model}". Each entry is
    the protocol defaults with the entry's own keys over them, as the schema's validation
    makes a config's `real_protocols` entry."""
    table = yaml.safe_load(REFERENCE_REAL_PROTOCOLS_FILE.read_text())["protocols"]
    return {name: {**protocol_defaults(), **entry} for name, entry in table.items()}


@cache
def reference_real_accuracies() -> dict[str, dict]:
    """The reference's known real-hard accuracies (fractions), keyed "{dataset}-{model}"."""
    return yaml.safe_load(REFERENCE_REAL_ACCURACIES_FILE.read_text())["accuracies"]


# Keys of a protocol that decide how a run trains (and so enter its cache key).
TRAINING_KEYS = (
    "model",
    "model_options",
    "labels",
    "augmentation",
    "aug_params",
    "optimizer",
    "momentum",
    "weight_decay",
    "scheduler",
    "step_size",
    "gamma",
    "epochs",
    "batch_size",
    "test_interval",
    "select",
    "train_transforms",
    "test_transforms",
    "processes",
    "precision",
)
# Optional lists (see transforms.batches): in a run protocol only when given, so a protocol
# without them keeps the key it had before they existed.
TRANSFORM_KEYS = ("train_transforms", "test_transforms")


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# Where a run's training targets come from, decided by the planner (`label_keys`) and
# carried in the run protocol, so the rules, the train stage and the engine read it
# instead of working it out again:
#   none            hard labels
#   teachers        mode M: the teachers relabel every (augmented) batch
#   teacher_logits  mode S: one stored teacher label per image, made by the soft_labels stage
#   set             mode S: the syn set's own soft labels
LABEL_SOURCES = ("none", "teachers", "teacher_logits", "set")
# Left out of the cache key: the label source follows from `labels`, `soft_label_mode`
# and `soft_source`, which the key holds, and leaving it out keeps the keys of runs made
# before it was carried.
NOT_IN_KEY = ("label_source",)


def protocol_key(run_protocol: dict) -> str:
    keyed = {k: v for k, v in run_protocol.items() if k not in NOT_IN_KEY}
    return hashlib.sha256(canonical_json(keyed).encode()).hexdigest()[:KEY_LENGTH]


def canonicalise(run: dict) -> None:
    """One spelling per training: model options and augmentation parameters with every
    default filled in and the reference's names turned into ours, numbers as floats or
    ints, so two spellings of one run share its key (and a default that changes in the
    code changes the key). A selection or test interval the planner has not resolved is
    its bug, not the config's."""
    from ddrank_steps.augment import canonical_augmentation

    for key in ("select", "test_interval"):
        if run.get(key) is None:
            raise ValueError(f"run protocol without {key}: resolve_protocol sets it")
    run["model_options"] = canonical_options(run["model"], run.get("model_options"))
    run["model"] = canonical_model_name(run["model"])  # `resnet18` is `torchvision:resnet18`
    run["augmentation"], run["aug_params"] = canonical_augmentation(
        run.get("augmentation"), run.get("aug_params")
    )
    for key in ("weight_decay", "gamma"):
        if run.get(key) is not None:
            run[key] = float(run[key])
    momentum = run.get("momentum")
    if momentum is not None:
        run["momentum"] = (
            [float(m) for m in momentum] if isinstance(momentum, list) else float(momentum)
        )
    for key in ("epochs", "batch_size", "test_interval", "step_size"):
        if run.get(key) is not None:
            run[key] = int(run[key])


def resolve_protocol(protocol: dict, metric: metric_registry.Metric) -> dict:
    """The metric's protocol with what it leaves to the metric filled in: the test interval
    (the metric's own, `Metric.test_interval`) and the selection rule (`UNNAMED_SELECT`).
    An explicit value wins."""
    resolved = copy.deepcopy(protocol)
    if resolved.get("test_interval") is None:
        resolved["test_interval"] = metric.test_interval
    if resolved.get("select") is None:
        resolved["select"] = UNNAMED_SELECT
    return resolved


def run_protocol(protocol: dict, lr_source: str, labels: dict | None = None) -> dict:
    """The canonical protocol of one run: training keys, the resolved LR and, for soft
    labels, the resolved recipe (loss kwargs with defaults, teachers and their sources)."""
    run = {k: copy.deepcopy(protocol.get(k)) for k in TRAINING_KEYS}
    for key in (*TRANSFORM_KEYS, "processes"):  # keys that only some runs have
        if not run[key]:
            del run[key]
    if precision_of(run) == UNNAMED_PRECISION:  # fp32 runs keep the keys they had
        del run["precision"]
    canonicalise(run)
    run["labels"] = "soft" if labels else "hard"
    run["label_source"] = "none"
    if labels:
        run.update(copy.deepcopy(labels))
    if run["label_source"] not in LABEL_SOURCES or (labels is None) != (
        run["label_source"] == "none"
    ):
        raise ValueError(f"label_source {run['label_source']!r} does not fit labels {labels!r}")
    if run["scheduler"] == "step" and not run["step_size"]:
        run["step_size"] = max(1, run["epochs"] // 2)  # DC convention: decay at half way
    if run["scheduler"] != "step":
        run["step_size"] = None
        run["gamma"] = None
    run["lr_source"] = lr_source
    if lr_source == "grid" and not protocol.get("lr_grid"):
        raise ConfigError("the protocol sets neither lr nor lr_grid; set one of them")
    if lr_source == "grid":
        run["lr_grid"] = [float(x) for x in protocol["lr_grid"]]
    elif lr_source == "fixed":
        run["lr"] = float(protocol["lr"])
    return run


@dataclass(frozen=True)
class SetId:
    """A set a run trains on: the real train split, a round's random subset of `ipc`
    images per class, or a method's syn set. `name` is its `set` wildcard."""

    kind: str  # real | given | rdm | syn
    ipc: int | None = None  # rdm
    method: str | None = None  # syn

    @property
    def name(self) -> str:
        if self.kind == "real":
            return "real"
        if self.kind == "given":  # a known real-hard accuracy, not a training
            return "real-given"
        if self.kind == "rdm":
            return f"rdm-ipc{self.ipc}"
        return f"syn-{self.method}"


REAL = SetId("real")
GIVEN = SetId("given")


@dataclass(frozen=True)
class MetricRequest:
    """One metric asked for one method: what a registry entry plans its terms from."""

    method_name: str
    method: dict
    metric: str
    settings: dict
    protocol: dict  # the metric's protocol as the config gives it
    where: str  # the config path, for errors

    @property
    def dataset(self) -> str:
        return self.method["dataset"]


@dataclass
class Plan:
    config: dict
    seeds: list[int] = field(default_factory=list)
    protocols: dict[str, dict] = field(default_factory=dict)  # key -> run protocol
    teacher_sets: dict[str, list] = field(default_factory=dict)  # key -> resolved teachers
    scores: dict[tuple[str, str], dict] = field(default_factory=dict)  # (method, metric)
    sets: dict[str, SetId] = field(default_factory=dict)  # set wildcard -> set
    _peeked: dict[str, dict] = field(default_factory=dict, repr=False)
    # run file -> (dataset, set wildcard, protocol key, seed): what each planned run trains
    runs: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)
    # dataset -> the settings its prepared cache depends on (datasets.prepare_settings),
    # kept here so the rules read them without importing the dataset loaders (torch)
    dataset_settings: dict[str, dict] = field(default_factory=dict)

    # --- building -------------------------------------------------------------------------
    def add_run(self, dataset: str, set_id: SetId, protocol: dict, seed: int) -> str:
        key = protocol_key(protocol)
        self.protocols[key] = protocol
        self.sets[set_id.name] = set_id
        path = run_file(dataset, set_id, key, seed)
        self.runs[path] = (dataset, set_id.name, key, seed)
        return path

    def real_protocol(self, dataset: str, protocol: dict, where: str) -> dict:
        # Looked up under the dataset's own key first, then under its source, so a dataset
        # named `cifar10` with `source: CIFAR10` finds the reference's CIFAR10 recipe.
        table = {**reference_real_protocols(), **self.config.get("real_protocols", {})}
        source = self.config["datasets"][dataset]["source"]
        candidates = [f"{dataset}-{protocol['model']}", f"{source}-{protocol['model']}"]
        name = next((c for c in candidates if c in table), candidates[0])
        if name not in table:
            raise ConfigError(
                f"{where}: no real-data training protocol for '{name}' (needed for the real-hard "
                f"term). Add `real_protocols: {{{name}: {{lr: ..., epochs: ..., ...}}}}` to the "
                f"config; known: {sorted(table)}"
            )
        real = copy.deepcopy(table[name])
        if real.get("train_transforms") and self.config["datasets"][dataset].get("zca"):
            raise ConfigError(
                f"real_protocols.{name}.train_transforms: dataset {dataset} is ZCA-whitened, "
                "so its train split holds no pixels for transforms; remove them"
            )
        same = {
            "model": real.get("model") in (None, protocol["model"]),
            "model_options": not real.get("model_options")
            or canonical_options(protocol["model"], real["model_options"])
            == canonical_options(protocol["model"], protocol.get("model_options")),
        }
        for key, agrees in same.items():
            if not agrees:
                raise ConfigError(
                    f"real_protocols.{name}.{key}: the real-hard run must use the metric's own "
                    f"model; remove this key"
                )
        if real.get("select") not in (None, protocol["select"]):
            raise ConfigError(
                f"real_protocols.{name}.select: the real-hard run is chosen by the metric "
                f"protocol's select ('{protocol['select']}'), so HLR compares like with like; "
                "remove this key"
            )
        arithmetic = precision_of(protocol)
        if real.get("precision") not in (None, arithmetic):
            raise ConfigError(
                f"real_protocols.{name}.precision: the real-hard run trains in the metric "
                f"protocol's precision ('{arithmetic}'), "
                "so every term of a score has the same arithmetic; remove this key"
            )
        real["precision"] = protocol.get("precision")
        real["model"] = protocol["model"]
        real["model_options"] = copy.deepcopy(protocol.get("model_options") or {})
        real["labels"] = "hard"
        real["select"] = protocol["select"]
        if real.get("test_interval") is None:  # the entry's own interval wins
            real["test_interval"] = protocol["test_interval"]
        # The per-process batch decides BatchNorm statistics, and each process draws its own
        # transform stream, so a run on 4 processes is another run than on 1. Keyed for
        # every model, not only those with batch statistics: the summation order of the
        # all-reduced gradients differs too, and one rule is easier to trust.
        real["processes"] = self.config.get("resources", {}).get("real_processes", 1)
        # one test transform for every term of a score (real_protocols cannot set one)
        real["test_transforms"] = copy.deepcopy(protocol.get("test_transforms"))
        return run_protocol(real, "fixed" if real.get("lr") else "grid")

    def add_teachers(self, dataset: str, protocol: dict, where: str) -> list[dict]:
        """Resolve the protocol's teachers: a checkpoint under teacher_dir (the reference's
        layout), else the real-hard run of that model (trained once per seed, shared),
        whose run protocol this adds to the plan."""
        entries = protocol.get("teacher_model_names") or [protocol["model"]]
        resolved = []
        for entry in entries:
            if isinstance(entry, str):
                # the student's own model name brings its options (width…) along
                options = protocol.get("model_options") if entry == protocol["model"] else {}
                entry = {"model": entry, "model_options": options or {}}
            model, options = entry["model"], entry.get("model_options") or {}
            teacher = {
                "model": canonical_model_name(model),
                "model_options": canonical_options(model, options),
            }
            found = self.teacher_file(dataset, model)
            if found is not None:
                teacher["source"], teacher["path"] = "file", found
            elif pretrained_classes(model, options) is not None:
                # torchvision/timm weights from the local cache, used as they are (as the
                # reference uses its ImageNet teachers); the job checks the class count
                teacher["source"] = "pretrained"
            elif self.config.get("train_teachers", True):
                # tested like the student's runs, so a teacher of the student's own model
                # is the score's real-hard run, not a second training of it
                tested = {
                    **teacher,
                    **{
                        k: protocol.get(k)
                        for k in ("test_transforms", "select", "test_interval", "precision")
                    },
                }
                real = self.real_protocol(dataset, tested, where)
                key = protocol_key(real)
                self.protocols[key] = real
                self.sets[REAL.name] = REAL  # trained even when no metric has a real term
                teacher["source"], teacher["key"] = "trained", key
            else:
                expected = self.teacher_candidates(dataset, model)
                raise ConfigError(
                    f"{where}: teacher {model} for dataset {dataset} not found at "
                    f"{expected[0] if expected else '{teacher_dir}/' + dataset + '/' + model}"
                    " (ckpt_best.pt); put the checkpoint there, set teacher_dir, or set "
                    "train_teachers: true to train it on the real train split"
                )
            resolved.append(teacher)
        return resolved

    def teacher_candidates(self, dataset: str, model: str) -> list[str]:
        teacher_dir = self.config.get("teacher_dir")
        if not teacher_dir:
            return []
        source = self.config["datasets"][dataset]["source"]
        names = dict.fromkeys([dataset, source])  # ordered, without duplicates
        return [str(Path(teacher_dir) / name / model / "ckpt_best.pt") for name in names]

    def teacher_file(self, dataset: str, model: str) -> str | None:
        return next((p for p in self.teacher_candidates(dataset, model) if Path(p).is_file()), None)

    def add_label_recipe(self, request: MetricRequest, protocol: dict, set_id: SetId):
        """The soft-label part of a run protocol (None for hard labels), with the run's
        `label_source`. Adds the teachers it needs (and mode S's ensemble) to the plan."""
        if protocol["labels"] != "soft":
            return None
        from ddrank_steps.training.losses import resolve_kwargs

        criterion = protocol["soft_label_criterion"]
        keys = {
            "soft_label_mode": protocol["soft_label_mode"],
            "soft_label_criterion": criterion,
            "loss_fn_kwargs": resolve_kwargs(criterion, protocol.get("loss_fn_kwargs")),
        }
        own_labels = set_id.kind == "syn" and self.has_own_soft_labels(request.method)
        if protocol["soft_label_mode"] == "S" and own_labels:
            keys["soft_source"] = keys["label_source"] = "set"  # the method's own soft labels
            return keys
        teachers = self.add_teachers(request.dataset, protocol, request.where)
        if protocol["soft_label_mode"] == "S":
            keys["soft_source"] = "teachers"
            keys["label_source"] = "teacher_logits"
            self.teacher_sets[teachers_key(teachers)] = teachers
        else:
            keys["label_source"] = "teachers"
        keys["teachers"] = teachers
        return keys

    def has_own_lr(self, method: dict) -> bool:
        """Whether the method brings its own LR: in the config, or as `lr` in its .pt dict
        (peeked at memory-mapped, so a large file costs nothing to check)."""
        if method.get("lr") is not None:
            return True
        return self.peek(method["images"]).get("lr") is not None

    def has_own_soft_labels(self, method: dict) -> bool:
        """Whether the method's set carries soft labels: a `soft_labels` file, a `labels`
        file of (N, classes), or `labels` (N, classes) or `soft_labels` in its images dict.
        Mode S then trains on them (the reference's `soft_labels` argument), not on
        teacher logits."""
        if method.get("soft_labels"):
            return True
        inline = self.peek(method["images"])
        if inline.get("soft_labels") is not None or _is_soft(inline.get("labels")):
            return True
        return bool(method.get("labels")) and _is_soft(self.peek(method["labels"]).get("tensor"))

    def peek(self, path: str) -> dict:
        """A user's `.pt` file as a dict (a bare tensor under "tensor"), memory-mapped so a
        large file costs nothing; {} for anything else, which the syn_set job reports with
        the file and field."""
        if path.startswith("reference:") or not path.endswith(".pt"):
            return {}
        if path not in self._peeked:
            self._peeked[path] = _peek_pt(path)
        return self._peeked[path]

    def arm(self, request: MetricRequest, protocol: dict, kind: str, own_lr: bool = True):
        """(set, run protocol) of the syn or rdm arm of a term under `protocol`. With
        `own_lr`, the syn arm trains at the method's own LR where the metric's lr_rule
        is the reference's and the method has one."""
        method = request.method
        if protocol.get("lr") is not None:
            lr_source = "fixed"
        elif (
            kind == "syn"
            and own_lr
            and request.settings["lr_rule"] == "reference"
            and self.has_own_lr(method)
        ):
            lr_source = "set"  # the reference trains syn with the method's lr when given
        else:
            lr_source = "grid"
        if kind == "syn":
            set_id = SetId("syn", method=request.method_name)
        else:
            set_id = SetId("rdm", ipc=method["ipc"])
        labels = self.add_label_recipe(request, protocol, set_id)
        run = run_protocol(protocol, lr_source, labels)
        processes = self.set_processes(request.dataset, method["ipc"])
        if processes > 1:
            # keyed as real-hard's is (see real_protocol); a small set's key stays as it was
            run["processes"] = processes
            if run["batch_size"] % processes:
                raise ConfigError(
                    f"batch_size {run['batch_size']} must be divisible by the {processes} "
                    f"processes its {kind} set trains on under torchrun (the set holds at "
                    "least resources.ddp_min_images images); change batch_size, "
                    "resources.real_processes or resources.ddp_min_images"
                )
        return set_id, run

    def set_processes(self, dataset: str, ipc: int) -> int:
        """Processes a syn, rdm or reference set of `ipc` images per class trains on:
        resources.real_processes when it holds at least resources.ddp_min_images."""
        images = set_images(self.config["datasets"][dataset], ipc)
        return set_processes(self.config.get("resources", {}), images)

    def real_arm(self, request: MetricRequest):
        """(set, run protocol) of the real-hard term: the metric's model on the real split,
        or, with `eval_full_data: false`, a known accuracy of it (as the reference)."""
        if request.settings.get("eval_full_data", True):
            return REAL, self.real_protocol(request.dataset, request.protocol, request.where)
        return GIVEN, self.given_accuracy(request.dataset, request.protocol, request.where)

    def given_accuracy(self, dataset: str, protocol: dict, where: str) -> dict:
        """The run protocol of a known real-hard accuracy: its value and where it comes
        from, looked up like a real protocol ("{dataset}-{model}", then by the source)."""
        table = {**reference_real_accuracies(), **self.config.get("real_accuracies", {})}
        source = self.config["datasets"][dataset]["source"]
        candidates = [f"{dataset}-{protocol['model']}", f"{source}-{protocol['model']}"]
        name = next((c for c in candidates if c in table), None)
        if name is None:
            raise ConfigError(
                f"{where}.eval_full_data is false, so the real-hard term is a known accuracy, "
                f"but none is known for '{candidates[0]}'. Add `real_accuracies: "
                f'{{{candidates[0]}: {{accuracy: 0.xx, source: "where it comes from"}}}}` (a '
                f"fraction), or set eval_full_data: true to train it; known: {sorted(table)}"
            )
        entry = table[name]
        return {
            "given_accuracy": float(entry["accuracy"]),
            "source": str(entry.get("source") or f"real_accuracies.{name}"),
            "entry": name,
            "model": protocol["model"],
            "label_source": "none",
        }

    def add_metric(self, method_name: str, method: dict, metric: str, settings: dict) -> None:
        where = f"methods.{method_name}.metrics.{metric}"
        protocol = resolve_protocol(
            self.protocol(settings["protocol"], where), metric_registry.get(metric)
        )
        request = MetricRequest(method_name, method, metric, settings, protocol, where)
        try:
            terms = metric_registry.get(metric).plan_terms(self, request)
        except ConfigError as exc:
            raise ConfigError(f"{where}.protocol '{settings['protocol']}': {exc}") from None
        tested = {
            canonical_json(run_p.get("test_transforms"))
            for set_id, run_p in terms.values()
            if set_id.kind != "given"  # not a training: nothing is tested
        }
        if len(tested) > 1:  # the planner's own promise, not something a config can break
            raise RuntimeError(f"{where}: terms planned with different test_transforms")
        dataset = method["dataset"]
        rounds = [
            {
                "seed": seed,
                "terms": {
                    term: self.add_run(dataset, set_id, run_p, seed)
                    for term, (set_id, run_p) in terms.items()
                },
            }
            for seed in self.seeds
        ]
        self.scores[(method_name, metric)] = {
            "method": method_name,
            "metric": metric,
            "dataset": dataset,
            "ipc": method["ipc"],
            "settings": settings,
            "protocol_name": settings["protocol"],
            "protocols": {
                term: {"key": protocol_key(run_p), "set": set_id.name, **run_p}
                for term, (set_id, run_p) in terms.items()
            },
            "rounds": rounds,
        }

    def protocol(self, name: str, where: str) -> dict:
        protocols = self.config["protocols"]
        if name not in protocols:
            raise ConfigError(f"{where}.protocol '{name}' is not defined under protocols")
        return protocols[name]

    # --- queries used by the rules ----------------------------------------------------------
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


# the folder every result lies under; anything else a run reads is the user's own file
RESULTS_ROOT = Path(paths.DATASET).parts[0] + "/"


def dataset_paths(dataset: str) -> list[str]:
    return [paths.DATASET.format(dataset=dataset), paths.DATASET_META.format(dataset=dataset)]


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_file(dataset: str, set_id: SetId, key: str, seed: int) -> str:
    pattern = {"real": paths.REAL_RUN, "given": paths.GIVEN_RUN}.get(set_id.kind, paths.RUN)
    return pattern.format(dataset=dataset, set=set_id.name, protocol=key, seed=seed)


def teachers_key(teachers: list[dict]) -> str:
    """The cache key of a teacher ensemble (mode-S soft labels are keyed by it)."""
    return protocol_key({"teachers": teachers})


def _peek_pt(path: str) -> dict:
    if not Path(path).is_file():
        return {}  # the plan's path check reports a missing file
    from ddrank_steps.runtime.checked_read import load_torch

    try:
        blob = load_torch(path, mmap=True)
    except InputError:
        return {}  # unreadable: the syn_set job reports it with the file and field
    return blob if isinstance(blob, dict) else {"tensor": blob}


def _is_soft(labels) -> bool:
    """(N, classes) labels; `dim` is read without importing torch here."""
    return getattr(labels, "dim", lambda: 0)() == 2


def check_names(config: dict) -> None:
    """Model, augmentation and transform names and params, checked before any job runs."""
    from ddrank_steps.augment import build_augmentation
    from ddrank_steps.models import check_model_options
    from ddrank_steps.transforms.build import check_transforms

    for name, p in {**config["protocols"], **config.get("real_protocols", {})}.items():
        where = f"protocols.{name}" if name in config["protocols"] else f"real_protocols.{name}"
        try:
            if p.get("model"):
                check_model_options(p["model"], p.get("model_options"))
            build_augmentation(p.get("augmentation"), p.get("aug_params"))
            for key in TRANSFORM_KEYS:
                check_transforms(p.get(key), key)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if where.startswith("real_protocols") and p.get("test_transforms"):
            raise ConfigError(
                f"{where}.test_transforms: the real-hard term is tested with the test_transforms "
                "of the metric's protocol (one test transform for every term of a score); "
                "remove it here and set it in the protocol"
            )
        if p.get("select") == "val":
            for mname, m in config["methods"].items():
                ds = config["datasets"].get(m["dataset"], {})
                if not ds.get("val_fraction"):
                    raise ConfigError(
                        f"{where}.select is 'val' but datasets.{m['dataset']}.val_fraction is 0 "
                        f"(method {mname}); set val_fraction, e.g. 0.1"
                    )


def check_precisions(config: dict) -> None:
    """A precision the configured device cannot run. With `device: auto` or `cuda` the
    device is known only where the job runs (a SLURM head node has no GPU), so the train
    stage checks again there (`precision.check_supported`), before reading any data."""
    device = config.get("device", "auto")
    for name, p in config["protocols"].items():
        if p.get("precision") == "fp16" and not device.startswith(("cuda", "auto")):
            raise ConfigError(
                f"protocols.{name}.precision: fp16 runs on CUDA devices only, and device is "
                f"'{device}'; use precision: bf16 (autocast on the CPU) or fp32"
            )


def check_transform_datasets(config: dict) -> None:
    """Transforms need pixels: a ZCA dataset's sets are stored whitened and have none."""
    for mname, method in config["methods"].items():
        if not config["datasets"].get(method["dataset"], {}).get("zca"):
            continue
        for metric, settings in method["metrics"].items():
            p = config["protocols"].get(settings["protocol"], {})
            for key in TRANSFORM_KEYS:
                if p.get(key):
                    raise ConfigError(
                        f"protocols.{settings['protocol']}.{key}: method {mname} ({metric}) is on "
                        f"dataset {method['dataset']}, which is ZCA-whitened, so its sets hold "
                        "no pixels for transforms; remove them (augmentation: dsa works in ZCA "
                        "space) or set zca: false"
                    )


def check_datasets(config: dict) -> None:
    """Dataset keys that the schema cannot tie to a source (image_size only for image
    files, ImageFolder's required keys) and, for the datasets the methods use, that their
    files are where `root` says, checked before any job runs."""
    from ddrank_steps.data.datasets import check_layout, check_settings

    used = {method["dataset"] for method in config.get("methods", {}).values()}
    for name, settings in config["datasets"].items():
        check_settings(settings["source"], settings, where=f"datasets.{name}")
        if name in used:
            check_layout(settings, where=f"datasets.{name}")


# a method's own LR given as a string is read from a file of one of these kinds
LR_FILE_SUFFIXES = (".pt", ".txt")


def check_method_files(config: dict) -> None:
    """Every file a method names exists. A wrong path would otherwise drop the method
    silently once a leaderboard exists (Snakemake sees no job that could use it)."""
    where_from = f"relative paths are read from the working directory {Path.cwd()}"
    for name, method in config["methods"].items():
        where = f"methods.{name}"
        images = method["images"]
        if not images.startswith("reference:") and not Path(images).exists():
            raise ConfigError(
                f"{where}.images: '{images}' not found ({where_from}); give the .pt file or "
                "the class-folder tree of the distilled set"
            )
        for key in ("labels", "soft_labels"):
            path = method.get(key)
            if path and not Path(path).is_file():
                raise ConfigError(f"{where}.{key}: '{path}' not found ({where_from})")
        lr = method.get("lr")
        if isinstance(lr, str):
            if Path(lr).suffix not in LR_FILE_SUFFIXES:
                raise ConfigError(
                    f"{where}.lr: '{lr}' is a string, which is read as the path of a "
                    f"{'/'.join(LR_FILE_SUFFIXES)} file holding the LR; write a number "
                    f"without quotes (lr: {lr.strip() or 0.01}) or name such a file"
                )
            if not Path(lr).is_file():
                raise ConfigError(f"{where}.lr: '{lr}' not found ({where_from})")


def check_models_fit(config: dict) -> None:
    """Each protocol's model (and teachers) fits the images of every dataset a method
    trains it on; the image size is known now, so a too-deep net is no job's failure."""
    from ddrank_steps.data.datasets import image_side
    from ddrank_steps.models import largest_fitting_model

    checked = set()
    for method in config["methods"].values():
        dataset = method["dataset"]
        side = image_side(config["datasets"].get(dataset, {}))
        if side is None:
            continue
        for settings in method["metrics"].values():
            name = settings["protocol"]
            protocol = config["protocols"].get(name) or {}
            models = [("model", protocol.get("model"), protocol.get("model_options"))]
            for entry in protocol.get("teacher_model_names") or []:
                if isinstance(entry, dict):
                    entry = (entry.get("model"), entry.get("model_options"))
                else:  # the student's own model name brings its options along
                    same = entry == protocol.get("model")
                    entry = (entry, protocol.get("model_options") if same else None)
                models.append(("teacher_model_names", *entry))
            for key, model, options in models:
                if not model or (model, str(options), side) in checked:
                    continue
                checked.add((model, str(options), side))
                fitting = largest_fitting_model(model, options, (side, side))
                if fitting == model:
                    continue
                instead = (
                    f"the largest depth that fits is {fitting}"
                    if fitting
                    else "no depth of it fits; choose another model or a larger image_size"
                )
                raise ConfigError(
                    f"protocols.{name}.{key}: {model} does not fit the {side}x{side} images "
                    f"of dataset {dataset} (its feature map vanishes); {instead}"
                )


def build_plan(config: dict, check: bool = True) -> Plan:
    """The plan of a validated config, checked. The workflow stores it between runs
    (plan_cache.py): anything this reads besides the config and the package's own files
    must be in plan_cache's key (`watched_paths`), or a change to it goes unnoticed."""
    from ddrank_steps.data.datasets import prepare_settings

    config = copy.deepcopy(config)
    plan = Plan(config=config, seeds=round_seeds(config["seed"], config["num_eval"]))
    plan.dataset_settings = {
        name: prepare_settings(settings) for name, settings in config["datasets"].items()
    }
    if check:  # names first: a typo in a model name is the clearest error to report
        check_names(config)
        check_precisions(config)
        check_datasets(config)
        check_method_files(config)
        check_models_fit(config)
        check_transform_datasets(config)
    for name, method in config["methods"].items():
        where = f"methods.{name}"
        if method["dataset"] not in config["datasets"]:
            raise ConfigError(
                f"{where}.dataset '{method['dataset']}' is not defined under datasets"
            )
        images = method["images"]
        if images.startswith("reference:"):
            kind = images.split(":", 1)[1]
            if kind not in REFERENCE_SET_KINDS:
                raise ConfigError(
                    f"{where}.images '{images}': reference sets are {list(REFERENCE_SET_KINDS)}"
                )
        for metric, settings in method["metrics"].items():
            plan.add_metric(name, method, metric, settings)
    return plan
