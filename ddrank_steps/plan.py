"""From a validated config to the jobs of the DAG: which runs each score needs, and
under which cache key.

The Snakefile calls this module while it builds the DAG, so it is plain Python:
torch is imported only to check model and augmentation names.

Cache keys. A run's result depends on its set, its *run protocol*, its seed and the
dataset; its path `results/runs/{dataset}/{set}/{key}/seed{seed}.json` holds exactly
those. The key is a short hash of the canonical run protocol: the protocol with the
LR resolved (a grid, a fixed LR, or the method's own LR stored in its set) and with
nothing that does not change the run (not its name, not the metric's weight). So
two metrics or methods that need the same run share one file, and editing one
protocol only changes the keys that depend on it.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ddrank_steps.errors import ConfigError
from ddrank_steps.seeding import round_seeds

PACKAGE_DIR = Path(__file__).resolve().parent
REFERENCE_LR_GRID = [0.001, 0.005, 0.01, 0.05, 0.1]
METRICS = ("lrs_hard",)
REFERENCE_SET_KINDS = ("random", "herding", "kmeans")
KEY_LENGTH = 10

# The reference's real-data training table (ddranking utils/train_and_eval.py), keyed
# "{dataset}-{model}". Unlike the reference, each is trained for its own epoch count
# and batch size. Users add or override entries under `real_protocols` in the config.
_SGD_STEP = {
    "optimizer": "sgd",
    "momentum": 0.9,
    "scheduler": "step",
    "gamma": 0.1,
    "augmentation": "none",
    "aug_params": {},
    "test_interval": 10,
    "select": "best",
    "labels": "hard",
    "lr_grid": None,
}
_CIFAR_CONVNET = {
    **_SGD_STEP,
    "weight_decay": 5e-4,
    "epochs": 200,
    "batch_size": 512,
    "lr": 0.01,
    "step_size": 100,
}
REFERENCE_REAL_PROTOCOLS = {
    "ImageNet1K-ResNet-18-BN": {
        **_SGD_STEP,
        "weight_decay": 1e-4,
        "epochs": 90,
        "batch_size": 512,
        "lr": 0.1,
        "step_size": 30,
    },
    "TinyImageNet-ResNet-18-BN": {
        **_SGD_STEP,
        "optimizer": "adamw",
        "momentum": [0.9, 0.999],
        "scheduler": "cosine",
        "weight_decay": 0.01,
        "epochs": 100,
        "batch_size": 512,
        "lr": 0.01,
        "step_size": None,
    },
    "TinyImageNet-ConvNet-4-BN": {
        **_SGD_STEP,
        "weight_decay": 5e-4,
        "epochs": 100,
        "batch_size": 512,
        "lr": 0.01,
        "step_size": 50,
    },
    "CIFAR10-ConvNet-3": _CIFAR_CONVNET,
    "CIFAR10-ConvNet-3-BN": _CIFAR_CONVNET,
    "CIFAR100-ConvNet-3": _CIFAR_CONVNET,
    "CIFAR100-ConvNet-3-BN": _CIFAR_CONVNET,
}

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
)


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def protocol_key(run_protocol: dict) -> str:
    return hashlib.sha256(canonical_json(run_protocol).encode()).hexdigest()[:KEY_LENGTH]


def run_protocol(protocol: dict, lr_source: str) -> dict:
    """The canonical protocol of one run: training keys plus the resolved LR."""
    run = {k: copy.deepcopy(protocol.get(k)) for k in TRAINING_KEYS}
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


def set_id(kind: str, method: str | None = None, ipc: int | None = None) -> str:
    if kind == "real":
        return "real"
    if kind == "rdm":
        return f"rdm-ipc{ipc}"
    return f"syn-{method}"


def run_path(dataset: str, set_name: str, key: str, seed: int) -> str:
    return f"results/runs/{dataset}/{set_name}/{key}/seed{seed}.json"


@dataclass
class Plan:
    config: dict
    seeds: list[int] = field(default_factory=list)
    protocols: dict[str, dict] = field(default_factory=dict)  # key -> run protocol
    scores: dict[tuple[str, str], dict] = field(default_factory=dict)  # (method, metric)

    # --- building -------------------------------------------------------------------------
    def add_run(self, dataset: str, set_name: str, protocol: dict, seed: int) -> str:
        key = protocol_key(protocol)
        self.protocols[key] = protocol
        return run_path(dataset, set_name, key, seed)

    def real_protocol(self, dataset: str, protocol: dict, where: str) -> dict:
        # Looked up under the dataset's own key first, then under its source, so a dataset
        # named `cifar10` with `source: CIFAR10` finds the reference's CIFAR10 recipe.
        table = {**REFERENCE_REAL_PROTOCOLS, **self.config.get("real_protocols", {})}
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
        for key in ("model", "model_options"):
            if real.get(key) not in (None, {}, protocol.get(key)):
                raise ConfigError(
                    f"real_protocols.{name}.{key}: the real-hard run must use the metric's own "
                    f"model; remove this key"
                )
        real["model"] = protocol["model"]
        real["model_options"] = copy.deepcopy(protocol.get("model_options") or {})
        real["labels"] = "hard"
        return run_protocol(real, "fixed" if real.get("lr") else "grid")

    def add_lrs_hard(self, method_name: str, method: dict, settings: dict) -> None:
        where = f"methods.{method_name}.metrics.lrs_hard"
        protocol = self.protocol(settings["protocol"], where)
        if protocol["labels"] != "hard":
            raise ConfigError(f"{where}.protocol: LRS-hard needs a protocol with labels: hard")
        dataset, ipc = method["dataset"], method["ipc"]
        fixed = protocol.get("lr") is not None
        if fixed:
            syn_source = rdm_source = "fixed"
        else:
            rdm_source = "grid"
            use_own = method.get("lr") is not None and settings["lr_rule"] == "reference"
            syn_source = "set" if use_own else "grid"
        try:
            syn_p = run_protocol(protocol, syn_source)
            rdm_p = run_protocol(protocol, rdm_source)
            real_p = self.real_protocol(dataset, protocol, where)
        except ConfigError as exc:
            raise ConfigError(f"{where}.protocol '{settings['protocol']}': {exc}") from None
        rounds = []
        for seed in self.seeds:
            syn = self.add_run(dataset, set_id("syn", method=method_name), syn_p, seed)
            rdm = self.add_run(dataset, set_id("rdm", ipc=ipc), rdm_p, seed)
            real = self.add_run(dataset, "real", real_p, seed)
            rounds.append(
                {
                    "seed": seed,
                    # LRS-hard's own recipe is hard labels, so syn-any is the syn-hard run
                    "terms": {"real-hard": real, "syn-hard": syn, "syn-any": syn, "rdm-any": rdm},
                }
            )
        self.scores[(method_name, "lrs_hard")] = {
            "method": method_name,
            "metric": "lrs_hard",
            "dataset": dataset,
            "ipc": ipc,
            "weight": settings["weight"],
            "lr_rule": settings["lr_rule"],
            "protocol_name": settings["protocol"],
            "protocols": {
                "syn": {"key": protocol_key(syn_p), **syn_p},
                "rdm": {"key": protocol_key(rdm_p), **rdm_p},
                "real": {"key": protocol_key(real_p), **real_p},
            },
            "rounds": rounds,
        }

    def protocol(self, name: str, where: str) -> dict:
        protocols = self.config["protocols"]
        if name not in protocols:
            raise ConfigError(f"{where}.protocol '{name}' is not defined under protocols")
        return protocols[name]

    # --- queries used by the rules ----------------------------------------------------------
    def score_path(self, method: str, metric: str) -> str:
        return f"results/scores/{method}/{metric}.json"

    def score_targets(self) -> list[str]:
        return [self.score_path(m, k) for (m, k) in self.scores]

    def score_inputs(self, method: str, metric: str) -> list[str]:
        spec = self.scores[(method, metric)]
        return sorted({p for r in spec["rounds"] for p in r["terms"].values()})

    def method(self, name: str) -> dict:
        return self.config["methods"][name]

    def syn_images_input(self, name: str) -> str:
        m = self.method(name)
        images = m["images"]
        if images.startswith("reference:"):
            kind = images.split(":", 1)[1]
            return f"results/sets/{m['dataset']}/reference/ipc{m['ipc']}/{kind}.pt"
        return images

    def train_set_input(self, dataset: str, set_name: str, seed: int) -> str | None:
        if set_name == "real":
            return None
        if set_name.startswith("rdm-ipc"):
            ipc = int(set_name[len("rdm-ipc") :])
            return f"results/sets/{dataset}/rdm/ipc{ipc}/seed{seed}.pt"
        return f"results/sets/{dataset}/syn/{set_name[len('syn-') :]}.pt"


def check_names(config: dict) -> None:
    """Model and augmentation names and params, checked before any job runs."""
    from ddrank_steps.augment import build_augmentation
    from ddrank_steps.models import check_model_options

    for name, p in {**config["protocols"], **config.get("real_protocols", {})}.items():
        where = f"protocols.{name}" if name in config["protocols"] else f"real_protocols.{name}"
        try:
            if p.get("model"):
                check_model_options(p["model"], p.get("model_options"))
            build_augmentation(p.get("augmentation"), p.get("aug_params"))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if p.get("select") == "val":
            for mname, m in config["methods"].items():
                ds = config["datasets"].get(m["dataset"], {})
                if not ds.get("val_fraction"):
                    raise ConfigError(
                        f"{where}.select is 'val' but datasets.{m['dataset']}.val_fraction is 0 "
                        f"(method {mname}); set val_fraction, e.g. 0.1"
                    )


def build_plan(config: dict, check: bool = True) -> Plan:
    config = copy.deepcopy(config)
    plan = Plan(config=config, seeds=round_seeds(config["seed"], config["num_eval"]))
    if check:  # names first: a typo in a model name is the clearest error to report
        check_names(config)
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
            if metric == "lrs_hard":
                plan.add_lrs_hard(name, method, settings)
    return plan


def module_sources(module: str) -> list[str]:
    """The package files a stage's module runs: itself and every ddrank_steps module it
    imports, transitively. Rules list them as inputs so a code change reruns its jobs."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        if parts[0] != "ddrank_steps":
            continue
        base = PACKAGE_DIR.joinpath(*parts[1:])
        candidates = [base / "__init__.py", base.with_suffix(".py")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None or path in seen:
            continue
        seen.add(path)
        for i in range(1, len(parts)):  # parent packages' __init__ run on import too
            todo.append(".".join(parts[:i]))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                todo.append(node.module)
                todo.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return sorted(str(p) for p in seen)
