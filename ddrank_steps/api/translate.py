"""DD-Ranking's evaluator settings (its YAML configs and constructor keywords) as a ddrank
config: one method, one metric.

The four reference classes each read their own keys with their own defaults
(`DEFAULTS`, from the ddranking 0.2.0 documentation). `translate` maps every one of them
onto ddrank's config, or refuses it with a message naming it: the Python API
(`ddrank_steps.metrics`) and `ddrank import-config` both go through it, so a YAML file
and the same keywords make the same config.

What is deliberately not copied (config/README.md, "Coming from DD-Ranking"): real-hard
trains for its own recipe's epochs (the reference loops for the syn `num_epochs`), one
image size for training and test, and a missing teacher is trained rather than a crash.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from ddrank_steps.errors import ConfigError

# metric -> the reference class computing it
CLASSES = {
    "lrs_hard": "LabelRobustScoreHard",
    "lrs_soft": "LabelRobustScoreSoft",
    "ars": "AugmentationRobustScore",
    "accuracy": "GeneralEvaluator",
}

_COMMON = {
    "dataset": "CIFAR10",
    "real_data_path": "./dataset/",
    "ipc": 10,
    "model_name": "ConvNet-3",
    "data_aug_func": "cutmix",
    "aug_params": {"cutmix_p": 1.0},
    "optimizer": "sgd",
    "lr_scheduler": "step",
    "step_size": None,
    "weight_decay": 0.0005,
    "momentum": 0.9,
    "use_zca": False,
    "num_eval": 5,
    "im_size": (32, 32),
    "num_epochs": 300,
    "num_workers": 4,
    "save_path": None,
    "custom_train_trans": None,
    "custom_val_trans": None,
    "device": "cuda",
}
_SOFT = {
    "soft_label_mode": "S",
    "soft_label_criterion": "kl",
    "loss_fn_kwargs": None,
    "stu_use_torchvision": False,
    "tea_use_torchvision": False,
    "teacher_dir": "./teacher_models",
    "teacher_model_names": None,
}
# Every key each class reads, with its constructor default (ddranking 0.2.0's documentation).
DEFAULTS: dict[str, dict] = {
    "lrs_hard": {
        **_COMMON,
        "real_batch_size": 256,
        "syn_batch_size": 256,
        "use_torchvision": False,
        "eval_full_data": False,
        "random_data_format": "tensor",
        "random_data_path": None,
        "dist": False,
    },
    "lrs_soft": {
        **_COMMON,
        **_SOFT,
        "use_aug_for_hard": False,
        "random_data_format": "tensor",
        "random_data_path": None,
        "real_batch_size": 256,
        "syn_batch_size": 256,
        "eval_full_data": False,
        "dist": False,
    },
    "ars": {
        **_COMMON,
        **_SOFT,
        "dataset": "ImageNet1K",
        "model_name": "ResNet-18-BN",
        "im_size": (224, 224),
        "label_type": "soft",
        "random_data_format": "image",
        "random_data_path": None,
        "batch_size": 256,
        "dist": False,
    },
    "accuracy": {
        **_COMMON,
        **_SOFT,
        "temperature": 1.0,
        "real_batch_size": 256,
        "syn_batch_size": 256,
        "default_lr": 0.01,
        "label_type": None,  # ddrank's: hard or soft (the reference guesses from its labels)
    },
}
# Keys a YAML file must set for its metric (the reference has no fallback for them either).
REQUIRED_IN_FILE = {
    "lrs_hard": ("dataset", "ipc", "model_name"),
    "lrs_soft": ("dataset", "ipc", "model_name", "soft_label_mode", "soft_label_criterion"),
    "ars": ("dataset", "ipc", "model_name", "label_type"),
    "accuracy": ("dataset", "ipc", "model_name"),
}
# Keys read by ddranking's Config but by none of the classes (its demo YAMLs carry them).
IGNORED = {"default_lr": "the reference never uses it"}

# Image size the reference trains at, per source: pixel sources are never resized by it
# (im_size is ignored there); image-file sources are resized to im_size.
NATIVE_SIZE = {
    "CIFAR10": 32,
    "CIFAR100": 32,
    "MNIST": 28,
    "FashionMNIST": 28,
    "SVHN": 32,
    "TinyImageNet": 64,
    "ImageNet1K": 224,
    "ImageNette": 128,
    "ImageWoof": 128,
    "ImageMeow": 128,
    "ImageSquawk": 128,
    "ImageFruit": 128,
    "ImageYellow": 128,
}
RESIZED_SOURCES = {"ImageNet1K", "ImageNette", "ImageWoof", "ImageMeow", "ImageSquawk"}
RESIZED_SOURCES |= {"ImageFruit", "ImageYellow"}


@dataclass
class Translation:
    """A ddrank config for one method and one metric, and what the user should know."""

    config: dict
    method: str
    metric: str
    notes: list[str] = field(default_factory=list)
    # reference settings that only the Python API uses (where to write the CSV, the rdm copy)
    save_path: str | None = None
    random_data: tuple[str, str] | None = None  # (format, path)


def settings_with_defaults(
    given: dict, metric: str, where: str, from_file: bool
) -> tuple[dict, list[str]]:
    """The class's settings (`given` over its defaults) and notes on keys it ignores. A
    key no reference class reads is refused, naming it; one that another class reads is
    ignored, as the reference does (one YAML often serves several metrics). A file must
    set the keys its metric cannot do without."""
    if metric not in CLASSES:
        raise ConfigError(f"metric '{metric}' is not one of {sorted(CLASSES)}")
    defaults = DEFAULTS[metric]
    every_key = set().union(*DEFAULTS.values())
    elsewhere = sorted(set(given) - set(defaults) - set(IGNORED) & every_key)
    notes = [
        f"{key}: not read by {CLASSES[metric]} (as in the reference); ignored" for key in elsewhere
    ]
    given = {k: v for k, v in given.items() if k not in elsewhere}
    unknown = sorted(set(given) - set(defaults) - set(IGNORED))
    if unknown:
        import difflib

        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ConfigError(
            f"{where}: {', '.join(hints)} {'is' if len(unknown) == 1 else 'are'} not a key of "
            f"any ddranking evaluator; remove it ({CLASSES[metric]} reads: "
            f"{', '.join(sorted(defaults))})"
        )
    if from_file:
        missing = [k for k in REQUIRED_IN_FILE[metric] if given.get(k) is None]
        if missing:
            raise ConfigError(
                f"{where}: {metric} ({CLASSES[metric]}) needs {', '.join(missing)}, which the "
                f"file does not set; add {' and '.join(f'`{k}: ...`' for k in missing)}"
            )
    merged = {**copy.deepcopy(defaults), **copy.deepcopy(given)}
    for key in given:
        if given[key] is None and defaults.get(key) is not None and key in REQUIRED_IN_FILE[metric]:
            raise ConfigError(f"{where}.{key} is null; {metric} needs a value")
    return merged, notes


def model_entry(name: str, use_torchvision: bool) -> tuple[str, dict]:
    """(model name, model_options) of a reference model name and its use_torchvision flag
    (`{torchvision: true}` for AlexNet, VGG and ResNet; ignored elsewhere, as the
    reference ignores it)."""
    from ddrank_steps.models import use_torchvision_options

    return name, use_torchvision_options(name, use_torchvision)


def translate(
    ref: dict,
    metric: str,
    method: str,
    images: str,
    *,
    where: str,
    given: set[str],
    labels: str | None = None,
    soft_labels: str | None = None,
    lr=None,
    weight: float | None = None,
    resolve_path: Callable[[str], str] = str,
    cuda_devices: int = 0,
    has_soft_labels: bool | None = None,
    train_unknown_real: bool = False,
) -> Translation:
    """The ddrank config scoring `images` as `method` under the reference settings `ref`
    (every key of the class, defaults filled in; `given` the keys the user set). Paths
    go through `resolve_path` (the API makes them absolute; import-config keeps them).
    With `train_unknown_real`, `eval_full_data: false` for a (dataset, model) with no known
    accuracy trains real-hard instead, with a note (import-config: the reference's own demo
    asks for one it does not have); otherwise the planner reports the missing entry."""
    out = Translation(config={}, method=method, metric=metric)
    note = out.notes.append
    dataset = str(ref["dataset"])
    from ddrank_steps.data.datasets import SOURCES

    if dataset not in SOURCES:
        raise ConfigError(f"{where}.dataset '{dataset}' is not a known dataset: {sorted(SOURCES)}")
    ipc = ref["ipc"]
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ConfigError(f"{where}.ipc must be a positive integer, got {ipc!r}")

    dataset_entry = {"source": dataset, "root": resolve_path(str(ref["real_data_path"]))}
    if ref.get("use_zca"):
        dataset_entry["zca"] = True
    if "num_workers" in given:
        dataset_entry["num_workers"] = int(ref["num_workers"])
    size = _image_size(ref.get("im_size"), where)
    native = NATIVE_SIZE.get(dataset)
    if size is not None and native is not None and size != native:
        if dataset in RESIZED_SOURCES:
            dataset_entry["image_size"] = size
        else:
            note(
                f"im_size {size}: the reference does not resize {dataset} either; its images "
                f"stay {native} px"
            )

    if has_soft_labels is None:
        has_soft_labels = soft_labels is not None
    soft = _uses_soft_labels(ref, metric, has_soft_labels)
    use_torchvision = ref.get("use_torchvision") or ref.get("stu_use_torchvision") or False
    model, model_options = model_entry(str(ref["model_name"]), bool(use_torchvision))
    protocol = {
        "model": model,
        "model_options": model_options,
        "labels": "soft" if soft else "hard",
        "augmentation": _augmentation(ref.get("data_aug_func"), where),
        "aug_params": _aug_params(ref, given),
        "optimizer": ref["optimizer"],
        "weight_decay": float(ref["weight_decay"]),
        "momentum": ref["momentum"],
        "scheduler": _scheduler(ref["lr_scheduler"], where),
        "step_size": ref.get("step_size"),
        "epochs": int(ref["num_epochs"]),
        "batch_size": int(ref.get("batch_size") or ref.get("syn_batch_size") or 256),
    }
    if isinstance(protocol["momentum"], (list, tuple)):
        protocol["momentum"] = [float(m) for m in protocol["momentum"]]
    if protocol["scheduler"] == "step" and not protocol["step_size"]:
        note(
            "lr_scheduler step without step_size: the reference asserts; ddrank decays at half "
            "of num_epochs"
        )
    for ours, theirs in (
        ("train_transforms", "custom_train_trans"),
        ("test_transforms", "custom_val_trans"),
    ):
        if ref.get(theirs):
            protocol[ours] = _transform_list(ref[theirs], f"{where}.{theirs}")
    trained_size = dataset_entry.get("image_size") or native
    if protocol.get("train_transforms") and trained_size:
        _fit_crops(protocol["train_transforms"], trained_size, f"{where}.custom_train_trans", note)
    if soft:
        protocol["soft_label_mode"] = ref.get("soft_label_mode") or "S"
        protocol["soft_label_criterion"] = ref.get("soft_label_criterion") or "kl"
        kwargs = dict(ref.get("loss_fn_kwargs") or {})
        if metric == "accuracy" and "temperature" in given:
            kwargs["temperature"] = float(ref["temperature"])
        protocol["loss_fn_kwargs"] = kwargs
        names = ref.get("teacher_model_names") or []
        if names:
            tea_tv = bool(ref.get("tea_use_torchvision"))
            teachers = []
            for name in names:
                t_model, t_options = model_entry(str(name), tea_tv)
                teachers.append({"model": t_model, "model_options": t_options})
            protocol["teacher_model_names"] = teachers

    config: dict = {
        "seed": 0,
        "num_eval": int(ref["num_eval"]),
        "device": _device(ref.get("device"), "device" in given, note),
        "datasets": {dataset: dataset_entry},
        "protocols": {metric: protocol},
        "methods": {},
    }
    processes = _processes(ref.get("dist"), cuda_devices, note)
    if processes > 1:
        config["resources"] = {"real_processes": processes, "train_gpus": 1}
    if soft and ref.get("teacher_dir"):
        config["teacher_dir"] = resolve_path(str(ref["teacher_dir"]))

    settings: dict = {"protocol": metric}
    if metric in ("lrs_hard", "lrs_soft"):
        settings["weight"] = 0.5 if weight is None else float(weight)
        settings["eval_full_data"] = bool(ref.get("eval_full_data"))
        if not settings["eval_full_data"] and train_unknown_real:
            from ddrank_steps.planning.plan import reference_real_accuracies

            if f"{dataset}-{model}" not in reference_real_accuracies():
                settings["eval_full_data"] = True
                note(
                    f"eval_full_data: false, but no accuracy of {dataset}-{model} is known (the "
                    "reference raises ValueError here): real-hard is trained instead. To use a "
                    f"published one, add real_accuracies: {{{dataset}-{model}: {{accuracy: ..., "
                    "source: ...}} and set eval_full_data: false"
                )
        if settings["eval_full_data"] and "real_batch_size" in given:
            # the reference trains real-hard at real_batch_size (its table's batch is unused)
            config["real_protocols"] = _real_batch(dataset, model, int(ref["real_batch_size"]))
    if metric == "lrs_soft":
        settings["use_aug_for_hard"] = bool(ref.get("use_aug_for_hard"))
    if metric == "ars":
        settings["gamma"] = 0.5 if weight is None else float(weight)
        settings["label_type"] = ref.get("label_type") or "soft"
    entry = {"dataset": dataset, "ipc": ipc, "images": images, "metrics": {metric: settings}}
    for key, value in (("labels", labels), ("soft_labels", soft_labels), ("lr", lr)):
        if value is not None:
            entry[key] = value
    config["methods"][method] = entry
    out.config = config

    out.save_path = ref.get("save_path")
    if ref.get("random_data_path"):
        fmt = ref.get("random_data_format") or "tensor"
        if fmt not in ("tensor", "image"):
            raise ConfigError(
                f"{where}.random_data_format '{fmt}' is not 'tensor' or 'image' (the reference's "
                "fallback 'tensors' is a typo it then rejects)"
            )
        out.random_data = (fmt, str(ref["random_data_path"]))
    for key, why in IGNORED.items():
        if key in given:
            note(f"{key}: accepted and ignored ({why})")
    return out


def _image_size(im_size, where: str) -> int | None:
    if im_size is None:
        return None
    size = list(im_size) if isinstance(im_size, (list, tuple)) else [im_size, im_size]
    if len(size) != 2 or size[0] != size[1] or not all(isinstance(s, int) for s in size):
        raise ConfigError(f"{where}.im_size {im_size!r}: ddrank trains square images; give [S, S]")
    return int(size[0])


def _uses_soft_labels(ref: dict, metric: str, has_soft_labels: bool) -> bool:
    if metric == "lrs_hard":
        return False
    if metric == "lrs_soft":
        return True
    if metric == "ars":
        return (ref.get("label_type") or "soft") == "soft"
    label_type = ref.get("label_type")
    if label_type is not None:
        return label_type == "soft"
    return has_soft_labels  # GeneralEvaluator: soft when it is given soft labels


def _augmentation(name, where: str) -> str:
    if name in (None, "", "none", "None"):
        return "none"
    if str(name).lower() == "zca":
        raise ConfigError(
            f"{where}.data_aug_func 'zca': ddrank whitens the dataset once (use_zca: true) "
            "instead of re-fitting ZCA on every batch; set use_zca and another data_aug_func"
        )
    return str(name).lower()


def _aug_params(ref: dict, given: set[str]) -> dict:
    # The reference's default {'cutmix_p': 1.0} belongs to its default cutmix: with another
    # augmentation and no params given, that augmentation's own defaults apply.
    if "aug_params" not in given and (ref.get("data_aug_func") or "").lower() != "cutmix":
        return {}
    return dict(ref.get("aug_params") or {})


def _scheduler(name: str, where: str) -> str:
    if name in ("step", "cosine", "cosineannealing", "none"):
        return name
    raise ConfigError(
        f"{where}.lr_scheduler '{name}' is not one of step, cosine, cosineannealing (the "
        "reference documents lambda_step but raises NotImplementedError for it)"
    )


def _device(value, given: bool, note) -> str:
    if value in (None, "cuda") and not given:
        return "auto"  # the reference's default 'cuda' is "the GPU"; auto also runs without one
    if value == "cuda":
        note("device cuda -> auto (the GPU when there is one)")
        return "auto"
    return str(value)


def _processes(dist, cuda_devices: int, note) -> int:
    if not dist:
        return 1
    if cuda_devices > 1:
        note(f"dist: true -> resources.real_processes {cuda_devices} (one per visible GPU)")
        return cuda_devices
    note(
        "dist: true: real-hard runs in one process here; set resources.real_processes to the "
        "number of GPUs to train it with DistributedDataParallel"
    )
    return 1


def _transform_list(spec, where: str) -> list:
    if not isinstance(spec, list):
        raise ConfigError(
            f"{where}: a list of {{name, args}} items (the reference's YAML format), got "
            f"{type(spec).__name__}"
        )
    return copy.deepcopy(spec)


# Crops whose output size is their `size` argument.
CROPS = ("RandomResizedCrop", "RandomCrop", "CenterCrop")


def _fit_crops(spec: list, size: int, where: str, note) -> None:
    """Crops of the train list that change the image size are set to the size the dataset
    is trained and tested at: ddrank keeps one resolution per score (the reference's
    ImageNet demo trains at 64 px and tests at 224 px)."""
    for i, item in enumerate(spec):
        args = item.get("args") if isinstance(item, dict) else None
        if item.get("name") not in CROPS or not isinstance(args, dict) or "size" not in args:
            continue
        value = args["size"]
        sizes = value if isinstance(value, (list, tuple)) else [value, value]
        if list(sizes) != [size, size]:
            args["size"] = size
            note(
                f"{where}[{i}] {item['name']} size {value} -> {size}: ddrank trains and tests at "
                f"one resolution ({size} px); to train at {value} px, set the dataset's "
                f"image_size to {value}"
            )


def _real_batch(dataset: str, model: str, batch: int) -> dict:
    from ddrank_steps.planning.plan import reference_real_protocols

    name = f"{dataset}-{model}"
    table = reference_real_protocols()
    if name not in table:
        return {}  # the planner asks for a real_protocols entry, naming it
    entry = copy.deepcopy(table[name])
    entry["batch_size"] = batch
    return {name: entry}
