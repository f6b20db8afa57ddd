"""What the four DD-Ranking evaluators share: settings in, one cached workflow run per
`compute_metrics` call, the reference's result dict out.

An evaluator never trains. Each call
1. stores the set (tensor, labels, soft labels, LR) content-addressed under the work
   directory, so the same tensor is the same method and another tensor another one;
2. writes a ddrank config for that one method and metric (`translate.translate`)
   and checks it (schema and plan), then checks the set against its dataset's facts
   (class count, image shape, mean/std), so a wrong set is refused before any job runs
   where the settings tell those facts, and before any training where only preparing
   the dataset does (`_dataset_meta`);
3. runs the workflow to the method's score (`workflow_run`), which trains only what the
   work directory does not hold yet: real-hard and rdm runs are shared by every call;
4. reads the score file, prints the terms, writes `save_path` (one row per round, as the
   reference; without one, the reference's ./results/{dataset}/{model_name}/ipc{ipc}/ CSV)
   and returns the reference's keys, in ddrank's units (accuracies and their
   differences as fractions; LRS and ARS in [0, 100]). The first call of a process prints
   what differs from the reference on purpose.

Each class's constructor is the reference's (`__init_subclass__` gives it the signature of
`reference_defaults.init_signature`): a parameter not passed is not "given", so its
default is the class's, not a key the user set.

The work directory (keyword `work_dir`) defaults to `ddrank-work/` beside `save_path`, or
in the current directory without one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import shutil
from pathlib import Path

from ddrank_steps import paths
from ddrank_steps.api.config import Config
from ddrank_steps.api.reference_defaults import DEFAULT_SAVE_NAME, DIFFERENCES, init_signature
from ddrank_steps.api.translate import (
    DEFAULTS,
    Context,
    Translation,
    settings_with_defaults,
    translate,
)
from ddrank_steps.api.workflow_run import check_config, read_score_of_run, run, write_config
from ddrank_steps.errors import ConfigError, InputError

WORK_DIR_NAME = "ddrank-work"
# ddrank-only keywords of every evaluator (besides the reference's)
OWN_KEYWORDS = ("work_dir", "cores", "method_name", "real_accuracies", "real_protocols", "seed")


class Evaluator:
    METRIC = ""  # the metric_registry name of what this class computes

    def __init_subclass__(cls, **kwargs):
        """Each class takes the reference's constructor parameters, in its order and with
        its defaults (`reference_defaults.init_signature`), then ddrank's keywords."""
        super().__init_subclass__(**kwargs)
        if not cls.METRIC:
            return
        signature = init_signature(cls.METRIC, OWN_KEYWORDS)

        def __init__(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs).arguments  # only what was passed
            bound.pop("self")
            given = {**bound.pop("keys", {})}
            own = {k: bound.pop(k) for k in OWN_KEYWORDS if k in bound}
            config = bound.pop("config", None)
            given.update(bound)
            self._setup(config, given, own)

        __init__.__signature__ = signature
        __init__.__qualname__ = f"{cls.__name__}.__init__"
        cls.__init__ = __init__

    def _setup(self, config, kwargs: dict, own: dict) -> None:
        given: dict = {}
        where = f"{type(self).__name__}(...)"
        if config is not None:
            config = config if isinstance(config, Config) else Config(config)
            given.update(config)
            where = config.where()
        given.update(kwargs)  # keywords beside a config win
        given = {k: _transform_spec(k, v) for k, v in given.items()}
        self.where = where
        self.from_config = config is not None
        self.given_keys = set(given)
        self.settings, self.notes = settings_with_defaults(
            given, self.METRIC, where, config is not None
        )
        self.given_keys -= {n.split(":")[0] for n in self.notes}
        save_path = self.settings.get("save_path")
        default_dir = Path(save_path).parent if save_path else Path.cwd()
        self.work_dir = Path(own.get("work_dir") or default_dir / WORK_DIR_NAME).absolute()
        self.cores = own.get("cores")
        self.method_name = own.get("method_name")
        extra = ("real_accuracies", "real_protocols", "seed")
        self.extra = {k: own[k] for k in extra if own.get(k) is not None}

    # --- one call -------------------------------------------------------------------------
    def _compute(self, image_tensor, image_path, labels, soft_labels, syn_lr, weight) -> dict:
        with _removed_if_refused(self.work_dir):
            checked, config_file, method, translation = self._prepare(
                image_tensor, image_path, labels, soft_labels, syn_lr, weight
            )
        score_file = paths.SCORE.format(method=method, metric=self.METRIC)
        run(config_file, self.work_dir, [score_file], self.cores)
        score = read_score_of_run(config_file, self.work_dir, score_file, self.cores)
        _print_terms(score)
        result = self.result(score)
        _write_rounds(
            Path(translation.save_path or self._default_save_path()), self.rounds_table(score)
        )
        if translation.random_data:
            _export_rdm(checked, translation, self.work_dir)
        return result

    def _prepare(self, image_tensor, image_path, labels, soft_labels, syn_lr, weight) -> tuple:
        """The set stored, its config written and checked, and the set checked against its
        dataset's facts: (checked config, config file, method, translation)."""
        if (image_tensor is None) == (image_path is None):
            raise InputError(
                "compute_metrics",
                "image_tensor",
                "give exactly one of image_tensor and image_path",
                "pass the set as a tensor or as a class-folder tree",
            )
        lr = _check_lr(syn_lr)
        images, labels_file, soft_file, digest = self._store_set(
            image_tensor, image_path, labels, soft_labels, lr
        )
        method = self.method_name or f"set-{digest[:10]}"
        context = Context(
            metric=self.METRIC,
            method=method,
            images=images,
            where=self.where,
            given=self.given_keys,
            labels=labels_file,
            soft_labels=soft_file,
            lr=lr if image_tensor is None else None,  # a tensor set carries its lr inside
            weight=weight,
            resolve_path=lambda p: str(Path(p).absolute()),
            cuda_devices=_cuda_devices(),
            has_soft_labels=soft_labels is not None,
            from_config=self.from_config,
        )
        translation = translate(self.settings, context)
        config = translation.config
        for key, value in self.extra.items():
            config[key] = value
        _print_differences()
        for note in [*self.notes, *translation.notes]:
            print(f"ddrank: {note}")
        checked = check_config(config, self.where)
        config_file = write_config(
            config, self.work_dir / "configs" / f"{method}.{self.METRIC}.yaml"
        )
        _check_set(checked, method, self._dataset_meta(checked, method, config_file))
        return checked, config_file, method, translation

    def _dataset_meta(self, config: dict, method: str, config_file: Path):
        """The dataset facts the method's set is checked against (None: nothing to check).
        Known from the dataset's settings for most sources (`meta_before_preparing`), so a
        wrong set is refused before any job runs and leaves no files behind. Otherwise
        (digits' statistics are measured on its train split, TinyImageNet's, ImageNet-1K's
        and ImageFolder's classes are read from their files, and a class-folder set is
        matched to class names read from CIFAR's meta file) only preparing the dataset
        tells them: it is prepared first, a cache the score's run then reuses."""
        from ddrank_steps.data.dataset_store import meta_before_preparing
        from ddrank_steps.data.training_inputs import DatasetMeta

        entry = config["methods"][method]
        settings = config["datasets"][entry["dataset"]]
        if entry["images"].startswith("reference:") or settings.get("zca"):
            return None  # built from the dataset; ZCA sets are checked against the fit
        folder_set = Path(entry["images"]).is_dir()
        meta = meta_before_preparing(entry["dataset"], settings, need_class_names=folder_set)
        if meta is not None:
            return meta
        meta_file = paths.DATASET_META.format(dataset=entry["dataset"])
        run(config_file, self.work_dir, [meta_file], self.cores)
        return DatasetMeta.load(str(self.work_dir / meta_file))

    def _store_set(self, image_tensor, image_path, labels, soft_labels, lr) -> tuple:
        """(images, labels file, soft labels file, digest): a tensor set stored as one
        content-named `.pt`, a folder's labels beside it."""
        store = self.work_dir / "inputs"
        if image_tensor is not None:
            images, digest = _store_tensor_set(store, image_tensor, labels, soft_labels, lr)
            return images, None, None, digest
        images = _check_folder(image_path)
        labels_file = _store(store, labels, "labels") if labels is not None else None
        soft_file = _store(store, soft_labels, "soft_labels") if soft_labels is not None else None
        return images, labels_file, soft_file, _digest(images.encode(), labels_file, soft_file, lr)

    def _default_save_path(self) -> Path:
        """Where the reference writes its CSV without save_path, from the current
        directory: ./results/{dataset}/{model_name}/ipc{ipc}/<its file>."""
        s = self.settings
        folder = Path("results", str(s["dataset"]), str(s["model_name"]), f"ipc{s['ipc']}")
        return folder / DEFAULT_SAVE_NAME[self.METRIC]

    # --- what a class returns -------------------------------------------------------------
    def result(self, score: dict) -> dict:
        raise NotImplementedError

    def rounds_table(self, score: dict) -> dict[str, list]:
        raise NotImplementedError


def _transform_spec(key: str, value):
    """custom_train_trans / custom_val_trans given as Python transforms become ddrank's
    list of {name, args}; lists (the YAML form) pass as they are."""
    if key not in ("custom_train_trans", "custom_val_trans") or value is None:
        return value
    if isinstance(value, list):
        return value
    try:
        from ddrank_steps.transforms.from_torchvision import compose_to_spec
    except ImportError:  # pragma: no cover - the translator ships with the package
        raise ConfigError(f"{key}: give the transforms as a list of {{name, args}}") from None
    return compose_to_spec(value, where=key)


def summary_value(score: dict, quantity: str, stat: str) -> float:
    return score["summary"][quantity][stat]


def _check_lr(syn_lr):
    if syn_lr is None:
        return None
    value = syn_lr
    if hasattr(value, "item"):
        if getattr(value, "numel", lambda: 1)() != 1:
            raise InputError(
                "compute_metrics",
                "syn_lr",
                f"a tensor of {value.numel()} values",
                "one positive number",
            )
        value = value.item()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InputError(
            "compute_metrics",
            "syn_lr",
            f"{syn_lr!r} is not a positive number",
            "give the learning rate the set was distilled with, or None to search the grid",
        )
    return float(value)


def _tensor(value, field: str):
    import torch

    if not isinstance(value, torch.Tensor):
        raise InputError(
            "compute_metrics", field, f"is a {type(value).__name__}, not a torch.Tensor"
        )
    return value.detach().cpu().contiguous()


@contextlib.contextmanager
def _removed_if_refused(work_dir: Path):
    """A refused call (a wrong set or config) leaves nothing behind: the files it added
    under inputs/ and configs/ are removed (a prepared dataset is a cache, and stays)."""
    folders = [work_dir / "inputs", work_dir / "configs"]
    before = {p for folder in folders if folder.is_dir() for p in folder.iterdir()}
    try:
        yield
    except (InputError, ConfigError):
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in set(folder.iterdir()) - before:
                path.unlink(missing_ok=True)
            if not any(folder.iterdir()):
                folder.rmdir()
        raise


def _store_tensor_set(store: Path, image_tensor, labels, soft_labels, lr) -> tuple[str, str]:
    """The set as one `.pt` dict, named by its content: (path, digest)."""
    images = _tensor(image_tensor, "image_tensor")
    if images.dim() != 4:
        raise InputError(
            "compute_metrics",
            "image_tensor",
            f"shape {tuple(images.shape)}",
            "(N, C, H, W) with N = num_classes x ipc, class-sorted unless labels are given",
        )
    blob = {"images": images}
    if labels is not None:
        blob["labels"] = _tensor(labels, "hard_labels")
    if soft_labels is not None:
        blob["soft_labels"] = _tensor(soft_labels, "soft_labels")
    if lr is not None:
        blob["lr"] = lr
    data = _torch_bytes(blob)
    digest = hashlib.sha256(data).hexdigest()
    path = store / f"{digest[:16]}.pt"
    if not path.is_file():
        _write_bytes(path, data)
    return str(path), digest


def _store(store: Path, value, field: str) -> str:
    data = _torch_bytes(_tensor(value, field))
    path = store / f"{hashlib.sha256(data).hexdigest()[:16]}.pt"
    if not path.is_file():
        _write_bytes(path, data)
    return str(path)


def _torch_bytes(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode())
    return h.hexdigest()


def _check_folder(image_path) -> str:
    folder = Path(image_path).absolute()
    if not folder.is_dir():
        raise InputError(
            image_path,
            "image_path",
            "is not a folder",
            "give a class-folder tree: one subfolder per class holding its images",
        )
    if not any(p.is_dir() for p in folder.iterdir()):
        raise InputError(
            image_path,
            "image_path",
            "holds no class subfolders",
            "one subfolder per class (sorted names are the class ids) holding png/jpg images",
        )
    return str(folder)


def _check_set(config: dict, method: str, meta) -> None:
    """The set read and checked against its dataset's facts `meta` as the syn_set job
    will, so a wrong shape, class count, label or value range is reported before any
    training (nothing to check when `meta` is None: a reference set, or a ZCA dataset,
    whose syn_set job checks the set against the fit, which needs the data)."""
    from ddrank_steps.data.syn_import import import_set

    if meta is None:
        return
    entry = config["methods"][method]
    import_set(
        method,
        entry["images"],
        entry.get("labels"),
        entry.get("lr"),
        entry["ipc"],
        meta,
        soft_labels=entry.get("soft_labels"),
    )


def _cuda_devices() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no CUDA runtime is no GPU
        return 0


def _print_terms(score: dict) -> None:
    print(
        f"ddrank: {score['method']} {score['metric']} over {len(score['rounds'])} rounds "
        f"(seeds {score['seeds']})"
    )
    for r in score["rounds"]:
        terms = ", ".join(
            f"{name} {t['acc']:.4f}" + (f" (given: {t['given']})" if t.get("given") else "")
            for name, t in r["terms"].items()
        )
        print(f"  round {r['round']} seed {r['seed']}: {terms}")
    for quantity, stats in score["summary"].items():
        if not isinstance(stats, dict) or "mean" not in stats:  # terms, diverged_terms
            continue
        se = stats.get("se")
        tail = f" (se {se:.4f})" if se is not None else ""
        print(f"  {quantity}: {stats['mean']:.4f} ± {stats['std']:.4f}{tail}")
    for name in score["summary"].get("diverged_terms", []):
        print(
            f"ddrank: warning: every LR of term {name} diverged in some round (see its run files)"
        )


def _write_rounds(path: Path, table: dict[str, list]) -> None:
    """The reference's CSV: one row per round, its column names, no index."""
    import pandas as pd

    from ddrank_steps.runtime.atomic_write import write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, pd.DataFrame(table).to_csv(index=False))


_DIFFERENCES_SHOWN = []  # one entry once printed: the list is said once per process


def _print_differences() -> None:
    if _DIFFERENCES_SHOWN:
        return
    _DIFFERENCES_SHOWN.append(True)
    print("ddrank: differs from ddranking on purpose (README, 'Coming from DD-Ranking'):")
    for line in DIFFERENCES:
        print(f"  - {line}")


def _export_rdm(config: dict, translation: Translation, work_dir: Path) -> None:
    """The rounds' rdm subsets copied to the reference's `random_data_path`: tensors as
    rdm_data_iter{i}.pt / rdm_labels_iter{i}.pt, images as PNG class folders per round
    (iter{i}/; the reference rewrites one folder every round, lossy JPEG)."""
    import torch

    fmt, target = translation.random_data
    target_dir = Path(target)
    entry = config["methods"][translation.method]
    seeds = [config["seed"] + i for i in range(config["num_eval"])]
    for i, seed in enumerate(seeds):
        fields = {"dataset": entry["dataset"], "ipc": entry["ipc"], "seed": seed}
        if fmt == "tensor":
            blob = torch.load(work_dir / paths.RDM_SET.format(**fields), weights_only=True)
            target_dir.mkdir(parents=True, exist_ok=True)
            torch.save(blob["images"], target_dir / f"rdm_data_iter{i}.pt")
            torch.save(blob["labels"], target_dir / f"rdm_labels_iter{i}.pt")
        else:
            dest = target_dir / f"iter{i}"
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(work_dir / paths.RDM_PNG.format(**fields), dest)
    print(f"ddrank: rdm subsets of {len(seeds)} rounds written to {target_dir} ({fmt})")


__all__ = ["DEFAULTS", "Evaluator"]
