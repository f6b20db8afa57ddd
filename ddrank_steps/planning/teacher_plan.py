"""Where each teacher of a soft-label protocol comes from, decided once, at plan time.

In the reference's order, then ddrank's: a checkpoint under
`{teacher_dir}/{dataset}/{model}/ckpt_best.pt`; else ImageNet-pretrained weights from the
local torch/timm cache, for a model that has them and a dataset with their classes (the
reference builds such a teacher with `pretrained=True`); else the teacher is trained on
the real train split by the real-hard recipe of its model (`train_teachers`). A teacher
that can be none of these is one error naming the three things that would make it one.

Whichever is chosen is said in words (`Plan.teacher_notes`): the workflow logs them,
`ddrank import-config` prints them and writes them into the config it writes, and the
score files carry each teacher's `source` in their run protocols. A mistyped teacher_dir
is then never mistaken for a real teacher.
"""

from __future__ import annotations

from pathlib import Path

from ddrank_steps.errors import ConfigError
from ddrank_steps.models import (
    canonical_model_name,
    canonical_options,
    pretrained_classes,
    pretrained_twin,
)
from ddrank_steps.planning.keys import REAL, protocol_key
from ddrank_steps.planning.set_size import class_count


def resolve_teachers(builder, dataset: str, protocol: dict, where: str) -> list[dict]:
    """The protocol's teachers, each with its `source` (file, pretrained, trained); a
    trained one's run protocol is added to the plan."""
    resolved = []
    for entry in protocol.get("teacher_model_names") or [protocol["model"]]:
        if isinstance(entry, str):
            # the student's own model name brings its options (width…) along
            options = protocol.get("model_options") if entry == protocol["model"] else {}
            entry = {"model": entry, "model_options": options or {}}
        teacher = resolve_teacher(builder, dataset, entry, protocol, where)
        resolved.append(teacher)
    return resolved


def resolve_teacher(builder, dataset: str, entry: dict, protocol: dict, where: str) -> dict:
    model, options = entry["model"], entry.get("model_options") or {}
    teacher = {
        "model": canonical_model_name(model),
        "model_options": canonical_options(model, options),
    }
    notes = builder.plan.teacher_notes
    found = teacher_file(builder, dataset, model)
    if found is not None:
        notes.setdefault(found, f"teacher {model} for {dataset}: checkpoint {found}")
        return {**teacher, "source": "file", "path": found}
    if pretrained_classes(model, options) is not None:
        # torchvision/timm weights the config names, used as they are; the job checks the
        # class count
        notes.setdefault(f"{model}:{options}", f"teacher {model} for {dataset}: {options}")
        return {**teacher, "source": "pretrained"}
    weights, missing_weights = pretrained_weights(builder, dataset, model, options)
    if weights is not None:
        text = (
            f"teacher {model} for {dataset}: no checkpoint under teacher_dir, so "
            f"{weights['model']} with pretrained weights "
            f"{weights['model_options'].get('pretrained')} from the local cache (as the "
            "reference builds it with pretrained=True)"
        )
        notes.setdefault(f"{dataset}:{model}:{options}", text)
        return {**weights, "source": "pretrained"}
    recipe, table = builder.real_recipe_name(dataset, model)
    if builder.config.get("train_teachers", True) and recipe in table:
        # tested like the student's runs, so a teacher of the student's own model is the
        # score's real-hard run, not a second training of it
        tested = {
            **teacher,
            **{k: protocol.get(k) for k in ("test_transforms", "select", "test_interval")},
            "precision": protocol.get("precision"),
        }
        real = builder.real_protocol(dataset, tested, where)
        key = protocol_key(real)
        builder.plan.protocols[key] = real
        builder.plan.sets[REAL.name] = REAL  # trained even when no metric has a real term
        notes.setdefault(
            f"{dataset}:{key}",
            f"teacher {model} for {dataset}: no checkpoint under teacher_dir "
            f"({_checkpoint(builder, dataset, model)}) and {missing_weights}, so it is trained "
            f"on the real train split by the real-hard recipe '{recipe}' "
            f"({builder.real_recipe(dataset, model)['source']})",
        )
        return {**teacher, "source": "trained", "key": key}
    raise missing_teacher(builder, dataset, model, where, missing_weights, recipe, table)


def missing_teacher(builder, dataset, model, where, missing_weights, recipe, table):
    """One error naming the checkpoint path, the weights and the recipe key."""
    ckpt = _checkpoint(builder, dataset, model)
    if not builder.config.get("train_teachers", True):
        train = "train_teachers is false, so it is not trained on the real train split"
    else:
        train = (
            f"there is no real-hard recipe '{recipe}' to train it on the real train split "
            f"(add real_protocols: {{{recipe}: {{lr: ..., epochs: ..., ...}}}}; known: "
            f"{sorted(table)})"
        )
    return ConfigError(
        f"{where}: teacher {model} for dataset {dataset} not found at {ckpt} (put "
        f"ckpt_best.pt there or set teacher_dir); {missing_weights}; and {train}"
    )


def _checkpoint(builder, dataset: str, model: str) -> str:
    """Where the teacher's checkpoint was looked for (the first place), for messages."""
    candidates = teacher_candidates(builder.config, dataset, model)
    if candidates:
        return candidates[0]
    return "{teacher_dir}/" + f"{dataset}/{model}/ckpt_best.pt, teacher_dir unset"


def pretrained_weights(builder, dataset: str, model: str, options: dict):
    """(teacher, None) with the pretrained twin of `model` whose weights are in the local
    cache and fit the dataset's classes; else (None, why not, naming the weights file)."""
    twin = pretrained_twin(model, options)
    if twin is None:
        return None, f"{model} has no pretrained weights (only torchvision/timm models do)"
    name, twin_options = twin
    try:
        classes = pretrained_classes(name, twin_options)
        spelled = canonical_options(name, twin_options)
    except ConfigError as exc:  # not in the local cache: the message names the file
        return None, f"the pretrained weights of {name} are not usable: {exc}"
    settings = builder.config["datasets"][dataset]
    wanted = class_count(settings, builder.plan.reads)
    if classes != wanted:
        return None, (
            f"the pretrained weights of {name} are for {classes} classes and {dataset} has {wanted}"
        )
    return {"model": canonical_model_name(name), "model_options": spelled}, None


def teacher_candidates(config: dict, dataset: str, model: str) -> list[str]:
    teacher_dir = config.get("teacher_dir")
    if not teacher_dir:
        return []
    source = config["datasets"][dataset]["source"]
    names = dict.fromkeys([dataset, source])  # ordered, without duplicates
    return [str(Path(teacher_dir) / name / model / "ckpt_best.pt") for name in names]


def teacher_file(builder, dataset: str, model: str) -> str | None:
    """The first candidate checkpoint that is there. Each is recorded with its folder
    (`{teacher_dir}/{dataset}/{model}`), so one that appears plans again."""
    reads = builder.plan.reads
    for candidate in teacher_candidates(builder.config, dataset, model):
        reads.look(Path(candidate).parent)
        if reads.look(candidate).is_file():
            return candidate
    return None
