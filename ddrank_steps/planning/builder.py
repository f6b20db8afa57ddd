"""From a validated config to a filled Plan: which runs each score needs, and under
which cache key (keys.py).

The Snakefile calls `build_plan` while it builds the DAG, so importing this module is
plain Python: torch is imported only while the plan is built, to check model,
augmentation and transform names (checks.py) and to peek into the methods' `.pt` files.
The workflow stores the Plan between runs (stored_plan.py), keyed on the config, the code
and every path the build looked at, which the build records as it looks (`Plan.reads`):
a file this reads must be read through `reads.look`, or a change to it goes unnoticed.

What each metric needs comes from the metric registry (`metric_registry`): the builder
gives every metric a `MetricRequest` and the helpers `arm` and `real_arm`, and turns the
(set, run protocol) pairs the metric returns into runs.

The label recipe of a run is decided here, once (`add_label_recipe`), and carried in its
run protocol as `label_source`: the rules, the train stage and the engine read it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from ddrank_steps import metric_registry
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.models import canonical_options
from ddrank_steps.planning import checks
from ddrank_steps.planning.keys import (
    GIVEN,
    REAL,
    SetId,
    canonical_json,
    protocol_key,
    resolve_protocol,
    run_file,
    run_protocol,
    teachers_key,
)
from ddrank_steps.planning.plan import Plan
from ddrank_steps.planning.reference_tables import (
    REFERENCE_SET_KINDS,
    reference_real_accuracies,
    reference_real_protocols,
    reference_real_recipes,
)
from ddrank_steps.planning.set_size import set_images, set_processes
from ddrank_steps.planning.teacher_plan import resolve_teachers
from ddrank_steps.protocol_defaults import precision_of
from ddrank_steps.seeding import round_seeds


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


class PlanBuilder:
    """Fills `plan` metric by metric; each registry entry's `plan_terms` gets the builder
    and asks it for the arms of its terms (`arm`, `real_arm`)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.config = plan.config
        # a user's .pt file as read (memory-mapped tensors): for this build only, never
        # stored with the plan (loading them would import torch)
        self._peeked: dict[str, dict] = {}

    def add_run(self, dataset: str, set_id: SetId, protocol: dict, seed: int) -> str:
        key = protocol_key(protocol)
        self.plan.protocols[key] = protocol
        self.plan.sets[set_id.name] = set_id
        path = run_file(dataset, set_id, key, seed)
        self.plan.runs[path] = (dataset, set_id.name, key, seed)
        return path

    def real_recipe_name(self, dataset: str, model: str) -> tuple[str, dict]:
        """(entry name, table) of the real-hard recipe of `model` on `dataset`: looked up
        under the dataset's own key first, then under its source, so a dataset named
        `cifar10` with `source: CIFAR10` finds the reference's CIFAR10 recipe."""
        table = {**reference_real_protocols(), **self.config.get("real_protocols", {})}
        source = self.config["datasets"][dataset]["source"]
        candidates = [f"{dataset}-{model}", f"{source}-{model}"]
        return next((c for c in candidates if c in table), candidates[0]), table

    def real_recipe(self, dataset: str, model: str) -> dict:
        """Which recipe trains real-hard, where it comes from and whether it is the
        reference's own: what the score files and the leaderboard say about it."""
        name, _ = self.real_recipe_name(dataset, model)
        if name in self.config.get("real_protocols", {}):
            recipe = {"source": f"real_protocols.{name} of the config", "reference": False}
        else:
            recipe = dict(reference_real_recipes()[name])
        batch = self.config.get("real_batch_size")
        return {"entry": name, **recipe, **({"batch_size": batch} if batch else {})}

    def real_protocol(self, dataset: str, protocol: dict, where: str) -> dict:
        name, table = self.real_recipe_name(dataset, protocol["model"])
        if name not in table:
            raise ConfigError(
                f"{where}: no real-data training protocol for '{name}' (needed for the real-hard "
                f"term). Add `real_protocols: {{{name}: {{lr: ..., epochs: ..., ...}}}}` to the "
                f"config; known: {sorted(table)}"
            )
        real = copy.deepcopy(table[name])
        if self.config.get("real_batch_size"):  # the reference's real_batch_size
            real["batch_size"] = self.config["real_batch_size"]
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
        """The protocol's teachers, resolved (teacher_plan.py): a checkpoint, pretrained
        weights, or the real-hard run of that model."""
        return resolve_teachers(self, dataset, protocol, where)

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
            self.plan.teacher_sets[teachers_key(teachers)] = teachers
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
            self.plan.reads.look(path)
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
        images = set_images(self.config["datasets"][dataset], ipc, self.plan.reads)
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
            for seed in self.plan.seeds
        ]
        trains_real = any(set_id == REAL for set_id, _ in terms.values())
        self.plan.scores[(method_name, metric)] = {
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
            **(
                {"real_recipe": self.real_recipe(dataset, protocol["model"])} if trains_real else {}
            ),
        }

    def protocol(self, name: str, where: str) -> dict:
        protocols = self.config["protocols"]
        if name not in protocols:
            raise ConfigError(f"{where}.protocol '{name}' is not defined under protocols")
        return protocols[name]


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


def build_plan(config: dict, check: bool = True) -> Plan:
    """The plan of a validated config, checked (checks.CHECKS, names first: a typo in a
    model name is the clearest error to report)."""
    from ddrank_steps.data.datasets import prepare_settings

    config = copy.deepcopy(config)
    plan = Plan(config=config, seeds=round_seeds(config["seed"], config["num_eval"]))
    plan.dataset_settings = {
        name: prepare_settings(settings) for name, settings in config["datasets"].items()
    }
    if check:
        checks.run_checks(config, plan.reads)
    builder = PlanBuilder(plan)
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
            builder.add_metric(name, method, metric, settings)
    return plan
