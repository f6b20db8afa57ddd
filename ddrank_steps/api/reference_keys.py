"""The key table: where each DD-Ranking key lands in a ddrank config.

`KEYS` lists every reference key (or group of keys read together) with the small handler
that writes its part of the config: the dataset entry, the protocol, the metric's settings
or a top-level key, and any note. `translate` runs them in the table's order, which is the
order their errors are raised in; the written config has a fixed layout whatever that
order (`PROTOCOL_ORDER`, `CONFIG_ORDER`). What differs between the four classes is data:
the keys each reads and their defaults (`reference_defaults.yaml`), and `METRICS` below.
A key whose handler is None is accepted and ignored, with `IGNORED`'s reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ddrank_steps.api.reference_defaults import (
    CLASSES,
    COMPUTE_DEFAULTS,
    DEFAULTS,
    IF_NULL,
    IGNORED,
    NATIVE_SIZE,
    RESIZED_SOURCES,
)
from ddrank_steps.api.reference_transforms import transforms as _transforms
from ddrank_steps.errors import ConfigError

if TYPE_CHECKING:
    from ddrank_steps.api.translate import Context


@dataclass(frozen=True)
class Metric:
    """How a class differs, as data: the labels it trains (`hard`, `soft`, or `label_type`:
    that key decides) and the settings of ddrank's metric that its keys fill, in order."""

    labels: str
    settings: tuple[str, ...] = ()


METRICS = {
    "lrs_hard": Metric("hard", ("weight", "eval_full_data")),
    "lrs_soft": Metric("soft", ("weight", "eval_full_data", "use_aug_for_hard")),
    "ars": Metric("label_type", ("gamma", "label_type")),
    "accuracy": Metric("label_type"),
}
# compute_metrics' weight keyword -> the setting of ddrank's metric it fills
WEIGHTS = {"lrs_lambda": "weight", "ars_lambda": "gamma"}
# The written config's layout, whatever order the handlers fill it in.
CONFIG_ORDER = ("seed", "num_eval", "device", "datasets", "protocols", "methods")
CONFIG_ORDER += ("resources", "teacher_dir", "real_protocols")
CONFIG_ORDER += ("real_batch_size",)
PROTOCOL_ORDER = ("model", "model_options", "labels", "augmentation", "aug_params")
PROTOCOL_ORDER += ("optimizer", "weight_decay", "momentum", "scheduler", "step_size")
PROTOCOL_ORDER += ("epochs", "batch_size", "train_transforms", "test_transforms")
PROTOCOL_ORDER += ("soft_label_mode", "soft_label_criterion", "loss_fn_kwargs")
PROTOCOL_ORDER += ("teacher_model_names",)


@dataclass
class Draft:
    """The config's parts as the handlers fill them in, and what they noted."""

    ref: dict  # every key of the class, defaults filled in
    ctx: Context
    dataset: dict = field(default_factory=dict)  # datasets.<name>
    protocol: dict = field(default_factory=dict)  # protocols.<metric>
    settings: dict = field(default_factory=dict)  # methods.<method>.metrics.<metric>
    config: dict = field(default_factory=dict)  # the other top-level keys
    notes: list[str] = field(default_factory=list)
    name: str = ""  # the dataset's
    ipc: int = 0
    model: str = ""
    trained_size: int | None = None  # the image size the dataset trains at, where known
    soft: bool = False
    save_path: str | None = None
    random_data: tuple[str, str] | None = None

    @property
    def where(self) -> str:
        return self.ctx.where

    @property
    def class_keys(self) -> dict:
        return DEFAULTS[self.ctx.metric]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def given(self, key: str) -> bool:
        return key in self.ctx.given

    def value(self, key: str):
        """The key's value, or what a null (or empty) one means: `IF_NULL`'s, else the
        class's default."""
        return self.ref.get(key) or IF_NULL.get(key, self.class_keys.get(key))

    def setting(self, name: str, value) -> None:
        """Set the metric's setting `name`, where ddrank's metric has one."""
        if name in METRICS[self.ctx.metric].settings:
            self.settings[name] = value


def ordered(parts: dict, order: tuple[str, ...]) -> dict:
    return dict(sorted(parts.items(), key=lambda item: order.index(item[0])))


def model_entry(name: str, use_torchvision: bool) -> tuple[str, dict]:
    """(model name, model_options) of a reference model name and its use_torchvision flag
    (`{torchvision: true}` for AlexNet, VGG and ResNet; ignored elsewhere, as the
    reference ignores it)."""
    from ddrank_steps.models import use_torchvision_options

    return name, use_torchvision_options(name, use_torchvision)


# --- the dataset -----------------------------------------------------------------------------


def _dataset(d: Draft) -> None:
    from ddrank_steps.data.datasets import SOURCES

    d.name = str(d.ref["dataset"])
    if d.name not in SOURCES:
        raise ConfigError(f"{d.where}.dataset '{d.name}' is not a known dataset: {sorted(SOURCES)}")
    d.dataset["source"] = d.name


def _ipc(d: Draft) -> None:
    ipc = d.ref["ipc"]
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ConfigError(f"{d.where}.ipc must be a positive integer, got {ipc!r}")
    d.ipc = ipc


def _real_data_path(d: Draft) -> None:
    _existing_if_absolute(d, "real_data_path")
    d.dataset["root"] = d.ctx.resolve_path(str(d.ref["real_data_path"]))


def _existing_if_absolute(d: Draft, key: str, folder_may_be_new: bool = False) -> None:
    """An absolute path that is not here (often one of the config author's machine) is
    refused naming the key, before the plan reports it under ddrank's own key name. A
    folder that may be filled later (teacher_dir: the plan says which teachers it trains
    instead) only needs its parent to be here."""
    from pathlib import Path

    path = Path(str(d.ref[key])).expanduser()
    where = path.parent if folder_may_be_new else path
    if path.is_absolute() and not where.exists():
        raise ConfigError(
            f"{d.where}.{key}: {path} does not exist on this machine (a path of the "
            f"config's author?); edit {key} to where it is here"
        )


def _use_zca(d: Draft) -> None:
    if d.ref.get("use_zca"):
        d.dataset["zca"] = True


def _num_workers(d: Draft) -> None:
    if d.given("num_workers"):
        d.dataset["num_workers"] = int(d.ref["num_workers"])


def _im_size(d: Draft) -> None:
    size = _image_size(d.ref.get("im_size"), d.where)
    native = NATIVE_SIZE.get(d.name)
    if size is not None and native is not None and size != native:
        if d.name in RESIZED_SOURCES:
            d.dataset["image_size"] = size
        else:
            d.note(
                f"im_size {size}: the reference does not resize {d.name} either; its images "
                f"stay {native} px"
            )
    d.trained_size = d.dataset.get("image_size") or native


def _image_size(im_size, where: str) -> int | None:
    if im_size is None:
        return None
    size = list(im_size) if isinstance(im_size, (list, tuple)) else [im_size, im_size]
    if len(size) != 2 or size[0] != size[1] or not all(isinstance(s, int) for s in size):
        raise ConfigError(f"{where}.im_size {im_size!r}: ddrank trains square images; give [S, S]")
    return int(size[0])


# --- the protocol ----------------------------------------------------------------------------


def _model(d: Draft) -> None:
    use_torchvision = d.ref.get("use_torchvision") or d.ref.get("stu_use_torchvision") or False
    d.model, options = model_entry(str(d.ref["model_name"]), bool(use_torchvision))
    d.protocol.update(model=d.model, model_options=options)


def _labels(d: Draft) -> None:
    """Hard or soft: fixed by the class, or by its label_type, or GeneralEvaluator's
    use_soft_label; given neither, GeneralEvaluator guesses from the labels it is given."""
    by = METRICS[d.ctx.metric].labels
    label_type, default = d.ref.get("label_type"), d.class_keys.get("label_type")
    if by != "label_type":
        d.soft = by == "soft"
    elif d.given("use_soft_label"):
        d.soft = bool(d.ref["use_soft_label"])
    elif label_type is None and default is None:
        d.soft = d.ctx.soft_labels_given
        if d.soft and not d.given("soft_label_mode"):
            # the labels given are what trains (the class's default M would relabel them)
            d.protocol["soft_label_mode"] = "S"
            d.note("labels are soft (N x classes): trained as soft_label_mode S")
    else:
        d.soft = (label_type or default) == "soft"
    d.protocol["labels"] = "soft" if d.soft else "hard"
    d.setting("label_type", d.value("label_type"))


def _augmentation(d: Draft) -> None:
    name = d.ref.get("data_aug_func")
    if name in (None, "", "none", "None"):
        d.protocol["augmentation"] = "none"
    elif str(name).lower() == "zca":
        raise ConfigError(
            f"{d.where}.data_aug_func 'zca': ddrank whitens the dataset once (use_zca: true) "
            "instead of re-fitting ZCA on every batch; set use_zca and another data_aug_func"
        )
    else:
        d.protocol["augmentation"] = str(name).lower()
    # The reference's default {'cutmix_p': 1.0} belongs to its default cutmix: with another
    # augmentation and no params given, that augmentation's own defaults apply.
    if not d.given("aug_params") and (name or "").lower() != "cutmix":
        d.protocol["aug_params"] = {}
    else:
        d.protocol["aug_params"] = dict(d.ref.get("aug_params") or {})


def _optimizer(d: Draft) -> None:
    d.protocol["optimizer"] = d.ref["optimizer"]


def _weight_decay(d: Draft) -> None:
    value = d.ref.get("weight_decay")
    omitted = d.ctx.from_config and not d.given("weight_decay")
    if value is None or (omitted and d.ctx.metric != "accuracy"):
        # a file that omits it gives the reference None, which its optimiser refuses
        # (GeneralEvaluator alone reads its keys with fallbacks)
        value = d.class_keys["weight_decay"]
        d.note(
            f"weight_decay not set: the reference reads None and its optimiser raises; ddrank "
            f"uses {CLASSES[d.ctx.metric]}'s default {value} (set weight_decay to choose)"
        )
    d.protocol["weight_decay"] = float(value)


def _scheduler(d: Draft) -> None:
    name = d.ref["lr_scheduler"]
    if name not in ("step", "cosine", "cosineannealing", "none"):
        raise ConfigError(
            f"{d.where}.lr_scheduler '{name}' is not one of step, cosine, cosineannealing (the "
            "reference documents lambda_step but raises NotImplementedError for it)"
        )
    d.protocol.update(scheduler=name, step_size=d.ref.get("step_size"))
    if name == "step" and not d.protocol["step_size"]:
        d.note(
            "lr_scheduler step without step_size: the reference asserts; ddrank decays at half "
            "of num_epochs"
        )


def _epochs(d: Draft) -> None:
    d.protocol["epochs"] = int(d.ref["num_epochs"])


def _batch_size(d: Draft) -> None:
    # ARS and GeneralEvaluator read one batch_size, the others syn_batch_size
    # (real_batch_size: _eval_full_data); a key the user set wins over a default
    keys = [k for k in ("batch_size", "syn_batch_size") if d.given(k)] or ["batch_size"]
    d.protocol["batch_size"] = int(d.value(keys[0]) or d.value("syn_batch_size"))


def _momentum(d: Draft) -> None:
    momentum = d.ref["momentum"]
    if isinstance(momentum, (list, tuple)):  # Adam's betas
        momentum = [float(m) for m in momentum]
    d.protocol["momentum"] = momentum


# --- soft labels (only where the class trains them) ------------------------------------------


def _soft_label_mode(d: Draft) -> None:
    d.protocol.setdefault("soft_label_mode", d.value("soft_label_mode"))  # _labels' S stays


def _soft_label_criterion(d: Draft) -> None:
    d.protocol["soft_label_criterion"] = d.value("soft_label_criterion")


def _loss_fn_kwargs(d: Draft) -> None:
    kwargs = dict(d.ref.get("loss_fn_kwargs") or {})
    if d.given("temperature") and "temperature" in d.class_keys:  # GeneralEvaluator's own
        kwargs["temperature"] = float(d.ref["temperature"])
    d.protocol["loss_fn_kwargs"] = kwargs


def _teachers(d: Draft) -> None:
    names = d.ref.get("teacher_model_names") or []
    if not names:
        # the planner's teacher is then the student's model (teacher_plan), as
        # GeneralEvaluator's fallback has it; the other classes fail
        if d.ctx.metric == "accuracy":
            return
        d.note(
            f"teacher_model_names not set: the reference fails loading teachers from None; "
            f"ddrank's teacher is the student's model {d.ref['model_name']} (set "
            "teacher_model_names to choose)"
        )
        return
    use_torchvision = bool(d.ref.get("tea_use_torchvision"))
    teachers = []
    for name in names:
        model, options = model_entry(str(name), use_torchvision)
        teachers.append({"model": model, "model_options": options})
    d.protocol["teacher_model_names"] = teachers


def _teacher_dir(d: Draft) -> None:
    if d.ref.get("teacher_dir"):
        _existing_if_absolute(d, "teacher_dir", folder_may_be_new=True)
        d.config["teacher_dir"] = d.ctx.resolve_path(str(d.ref["teacher_dir"]))


# --- how the rounds run ----------------------------------------------------------------------


def _num_eval(d: Draft) -> None:
    d.config["num_eval"] = int(d.ref["num_eval"])


def _device(d: Draft) -> None:
    value = d.ref.get("device")
    if value in (None, "cuda") and not d.given("device"):
        # the reference's default 'cuda' is "the GPU"; auto also runs without one
        d.config["device"] = "auto"
        return
    if value == "cuda":
        d.note("device cuda -> auto (the GPU when there is one)")
        value = "auto"
    d.config["device"] = str(value)


def _dist(d: Draft) -> None:
    if not d.ref.get("dist"):
        return
    gpus = d.ctx.cuda_devices
    if gpus > 1:
        d.note(f"dist: true -> resources.real_processes {gpus} (one per visible GPU)")
        d.config["resources"] = {"real_processes": gpus, "train_gpus": 1}
    else:
        d.note(
            "dist: true: real-hard runs in one process here; set resources.real_processes to "
            "the number of GPUs to train it with DistributedDataParallel"
        )


# --- the metric's settings -------------------------------------------------------------------


def _weight(d: Draft) -> None:
    for keyword, default in COMPUTE_DEFAULTS[d.ctx.metric].items():
        d.setting(WEIGHTS[keyword], default if d.ctx.weight is None else float(d.ctx.weight))


def _eval_full_data(d: Draft) -> None:
    if "eval_full_data" not in METRICS[d.ctx.metric].settings:
        return
    full = bool(d.ref.get("eval_full_data"))
    name = f"{d.name}-{d.model}"
    if not full and d.ctx.train_unknown_real:
        from ddrank_steps.planning.reference_tables import reference_real_accuracies

        if name not in reference_real_accuracies():
            full = True
            d.note(
                f"eval_full_data: false, but no accuracy of {name} is known (the reference "
                "raises ValueError here): real-hard is trained instead. To use a published "
                f"one, add real_accuracies: {{{name}: {{accuracy: ..., source: ...}}}} and set "
                "eval_full_data: false"
            )
    d.setting("eval_full_data", full)
    if full:
        # the reference trains real-hard at real_batch_size (256 by default); its table's
        # batch is unused
        d.config["real_batch_size"] = int(d.value("real_batch_size"))


def _use_aug_for_hard(d: Draft) -> None:
    d.setting("use_aug_for_hard", bool(d.ref.get("use_aug_for_hard")))


# --- what only the Python API uses -----------------------------------------------------------


def _save_path(d: Draft) -> None:
    d.save_path = d.ref.get("save_path")


def _random_data(d: Draft) -> None:
    if not d.ref.get("random_data_path"):
        return
    fmt = d.value("random_data_format")
    if fmt not in ("tensor", "image"):
        raise ConfigError(
            f"{d.where}.random_data_format '{fmt}' is not 'tensor' or 'image' (the reference's "
            "fallback 'tensors' is a typo it then rejects)"
        )
    d.random_data = (fmt, str(d.ref["random_data_path"]))


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """Reference keys read together, and the handler writing their part (None: accepted
    and ignored, with a note giving `IGNORED`'s reason when the user set it)."""

    keys: tuple[str, ...]
    write: Callable[[Draft], None] | None
    soft_only: bool = False  # runs only where the class trains soft labels

    def apply(self, d: Draft) -> None:
        if self.soft_only and not d.soft:
            return
        if self.write is not None:
            self.write(d)
            return
        for key in self.keys:
            if d.given(key):
                d.note(f"{key}: accepted and ignored ({IGNORED[key]})")


KEYS: tuple[Key, ...] = (
    Key(("dataset",), _dataset),
    Key(("ipc",), _ipc),
    Key(("real_data_path",), _real_data_path),
    Key(("use_zca",), _use_zca),
    Key(("num_workers",), _num_workers),
    Key(("im_size",), _im_size),
    Key(("model_name", "use_torchvision", "stu_use_torchvision"), _model),
    Key(("label_type", "use_soft_label"), _labels),
    Key(("data_aug_func", "aug_params"), _augmentation),
    Key(("optimizer",), _optimizer),
    Key(("weight_decay",), _weight_decay),
    Key(("lr_scheduler", "step_size"), _scheduler),
    Key(("num_epochs",), _epochs),
    Key(("batch_size", "syn_batch_size"), _batch_size),
    Key(("momentum",), _momentum),
    Key(("custom_train_trans", "custom_val_trans"), _transforms),
    Key(("soft_label_mode",), _soft_label_mode, soft_only=True),
    Key(("soft_label_criterion",), _soft_label_criterion, soft_only=True),
    Key(("loss_fn_kwargs", "temperature"), _loss_fn_kwargs, soft_only=True),
    Key(("teacher_model_names", "tea_use_torchvision"), _teachers, soft_only=True),
    Key(("num_eval",), _num_eval),
    Key(("device",), _device),
    Key(("dist",), _dist),
    Key(("teacher_dir",), _teacher_dir, soft_only=True),
    Key(tuple(WEIGHTS), _weight),  # compute_metrics' lrs_lambda / ars_lambda
    Key(("eval_full_data", "real_batch_size"), _eval_full_data),
    Key(("use_aug_for_hard",), _use_aug_for_hard),
    Key(("save_path",), _save_path),
    Key(("random_data_path", "random_data_format"), _random_data),
    *(Key((key,), None) for key in IGNORED),
)
