"""The config checks that run before any job: what the schema cannot say (names that exist
only in torchvision or timm, a model too deep for the images, files where the config says
they are), reported as one config error that names the key.

`build_plan` runs `CHECKS` in order: names first, a typo in a model name being the
clearest error to report. Each check takes the config and the build's `Reads`, and records
there every path whose state it looks at, as it looks (reads.py), so the stored plan is
planned, and checked, again when one of them changes.

torch is imported inside the checks that need it, never at import.
"""

from __future__ import annotations

from pathlib import Path

from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.keys import TRANSFORM_KEYS
from ddrank_steps.planning.reads import Reads

# Levels of folders below a dataset's root whose entries the layout checks may look at
# (e.g. {root}/cifar-10-batches-py/data_batch_1, {root}/train/{class}): a file added or
# removed there changes its folder's mtime.
ROOT_DEPTH = 2
# a method's own LR given as a string is read from a file of one of these kinds
LR_FILE_SUFFIXES = (".pt", ".txt")


def check_names(config: dict, reads: Reads | None = None) -> None:
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


def check_precisions(config: dict, reads: Reads | None = None) -> None:
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


def check_datasets(config: dict, reads: Reads | None = None) -> None:
    """Dataset keys that the schema cannot tie to a source (image_size only for image
    files, ImageFolder's required keys) and, for the datasets the methods use, that their
    files are where `root` says, checked before any job runs."""
    from ddrank_steps.data.datasets import check_layout, check_settings

    reads = reads if reads is not None else Reads()
    used = {method["dataset"] for method in config.get("methods", {}).values()}
    for name, settings in config["datasets"].items():
        check_settings(settings["source"], settings, where=f"datasets.{name}")
        if name in used:
            if settings.get("root"):  # the layout check looks in there
                reads.look_tree(Path(settings["root"]).expanduser(), ROOT_DEPTH)
            check_layout(settings, where=f"datasets.{name}")


def check_method_files(config: dict, reads: Reads | None = None) -> None:
    """Every file a method names exists. A wrong path would otherwise drop the method
    silently once a leaderboard exists (Snakemake sees no job that could use it)."""
    reads = reads if reads is not None else Reads()
    where_from = f"relative paths are read from the working directory {Path.cwd()}"
    for name, method in config["methods"].items():
        where = f"methods.{name}"
        images = method["images"]
        if not images.startswith("reference:") and not reads.look(images).exists():
            raise ConfigError(
                f"{where}.images: '{images}' not found ({where_from}); give the .pt file or "
                "the class-folder tree of the distilled set"
            )
        for key in ("labels", "soft_labels"):
            path = method.get(key)
            if path and not reads.look(path).is_file():
                raise ConfigError(f"{where}.{key}: '{path}' not found ({where_from})")
        lr = method.get("lr")
        if isinstance(lr, str):
            if Path(lr).suffix not in LR_FILE_SUFFIXES:
                raise ConfigError(
                    f"{where}.lr: '{lr}' is a string, which is read as the path of a "
                    f"{'/'.join(LR_FILE_SUFFIXES)} file holding the LR; write a number "
                    f"without quotes (lr: {lr.strip() or 0.01}) or name such a file"
                )
            if not reads.look(lr).is_file():
                raise ConfigError(f"{where}.lr: '{lr}' not found ({where_from})")


def check_models_fit(config: dict, reads: Reads | None = None) -> None:
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


def check_transform_datasets(config: dict, reads: Reads | None = None) -> None:
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


def check_transform_shapes(config: dict, reads: Reads | None = None) -> None:
    """Each protocol's train and test transforms give images of the size its datasets
    train at: run on one image of that size now, so a list that cannot work is refused
    before any job (a test CenterCrop(64) beside 224-px training fails every train job)."""
    from ddrank_steps.data.datasets import image_side

    checked = set()
    for method in config["methods"].values():
        side = image_side(config["datasets"].get(method["dataset"], {}))
        for settings in method["metrics"].values():
            name = settings["protocol"]
            protocol = config["protocols"].get(name) or {}
            for key in TRANSFORM_KEYS:
                spec = protocol.get(key)
                if not spec or side is None or (name, key, side) in checked:
                    continue
                checked.add((name, key, side))
                out = _shape_after(spec, side, f"protocols.{name}.{key}")
                if out is not None and tuple(out[1:]) != (side, side):
                    raise ConfigError(
                        f"protocols.{name}.{key}: turns a {side}x{side} image of dataset "
                        f"{method['dataset']} into {out[1]}x{out[2]}; every item must keep the "
                        f"size the model trains and tests at ({side} px): change the crop or "
                        f"resize sizes to {side}, or prepare the dataset at another size "
                        f"(datasets.{method['dataset']}.image_size)"
                    )


def _shape_after(spec: list, side: int, where: str) -> tuple | None:
    """The shape one random side x side image has after `spec` (conversions skipped, as
    the jobs skip them); None when the list cannot run on a bare image here (a grey
    dataset, a user's class): the job reports that with its own image."""
    import torch

    from ddrank_steps.transforms.batches import CONVERSIONS
    from ddrank_steps.transforms.build import build_transforms

    built = build_transforms(spec, where).transforms
    items = [t for item, t in zip(spec, built, strict=True) if item.get("name") not in CONVERSIONS]
    for channels in (3, 1):
        image = torch.rand(1, channels, side, side)
        try:
            with torch.random.fork_rng(devices=[]):
                for item in items:
                    image = item(image)
        except (TypeError, ValueError, RuntimeError):
            continue
        return tuple(image.shape[1:])
    return None


# In the order build_plan runs them: names first, the clearest error to report.
CHECKS = (
    check_names,
    check_precisions,
    check_datasets,
    check_method_files,
    check_models_fit,
    check_transform_datasets,
    check_transform_shapes,
)


def run_checks(config: dict, reads: Reads) -> None:
    """Every check, in order; the first failure is the error."""
    for check in CHECKS:
        check(config, reads)
