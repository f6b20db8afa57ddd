"""Teacher models: loading checkpoints in the shapes people save them, and ensembles.

Accepted checkpoint shapes: a plain state dict; `{"state_dict": …}` or `{"model": …}`
wrappers (ours is `{"state_dict": …, "arch": …}`); keys prefixed by `module.` (DDP) or
`_orig_mod.` (torch.compile). Loading is strict, so a teacher saved for another
architecture or class count fails with the key or shape that does not fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ddrank_steps import paths
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.models import build_model
from ddrank_steps.runtime.checked_read import load_torch, rebuild_fix

if TYPE_CHECKING:
    from ddrank_steps.data.training_inputs import DatasetMeta

_PREFIXES = ("module.", "_orig_mod.")


def extract_state_dict(blob, path: str) -> dict[str, torch.Tensor]:
    if isinstance(blob, dict):
        for key in ("state_dict", "model"):
            inner = blob.get(key)
            if (
                isinstance(inner, dict)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                blob = inner
                break
    if (
        not isinstance(blob, dict)
        or not blob
        or not all(isinstance(v, torch.Tensor) for v in blob.values())
    ):
        raise InputError(
            path,
            "state_dict",
            "is not a state dict (nor {'state_dict': …} / {'model': …} holding one)",
            "save the teacher with torch.save(model.state_dict(), path)",
        )
    cleaned = {}
    for key, value in blob.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def load_teacher(
    path: str,
    model: str,
    model_options: dict | None,
    num_classes: int,
    channels: int,
    im_size: tuple[int, int],
    device: torch.device,
) -> nn.Module:
    if not Path(path).is_file():
        raise InputError(path, "teacher", "file not found", "train it, or fix teacher_dir")
    # a checkpoint under teacher_dir is the user's; a trained teacher is a cached result
    trained = Path(path).parts[:1] == Path(paths.REAL_CHECKPOINT).parts[:1]
    fix = rebuild_fix(path) if trained else "save its state_dict again"
    blob = load_torch(path, fix=fix, field="teacher")
    state = extract_state_dict(blob, path)
    net = build_model(model, num_classes, channels, im_size, model_options)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise InputError(
            path,
            "state_dict",
            f"does not fit {model} with {num_classes} classes: {' '.join(first)}",
            "check the teacher's architecture, options and class count",
        ) from None
    net.eval().requires_grad_(False)
    return net.to(device)


class Ensemble(nn.Module):
    """The arithmetic mean of the teachers' logits (the reference's rule), always in eval
    mode and without gradients."""

    def __init__(self, teachers: list[nn.Module]):
        super().__init__()
        self.teachers = nn.ModuleList(teachers)

    def train(self, mode: bool = True):  # teachers never leave eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([t(x) for t in self.teachers]).mean(0)


def load_ensemble(
    specs: list[dict], paths: list[str], meta: DatasetMeta, device: torch.device
) -> Ensemble:
    """The ensemble of the teacher specs (`model`, `model_options`, `source`) for the
    images of the dataset `meta` describes: one checkpoint in `paths` per spec in order,
    except pretrained ones, built from the local model cache."""
    shape = (meta.height, meta.width)
    needing = [t for t in specs if t.get("source") != "pretrained"]
    if len(needing) != len(paths):
        raise ConfigError(f"{len(needing)} teachers need a checkpoint but {len(paths)} are given")
    checkpoints = iter(paths)
    nets = []
    for t in specs:
        if t.get("source") == "pretrained":
            nets.append(pretrained_teacher(t, meta, device))
        else:
            nets.append(
                load_teacher(
                    next(checkpoints),
                    t["model"],
                    t["model_options"],
                    meta.num_classes,
                    meta.channels,
                    shape,
                    device,
                )
            )
    return Ensemble(nets)


def pretrained_teacher(spec: dict, meta: DatasetMeta, device: torch.device) -> nn.Module:
    """A teacher with torchvision/timm weights from the local cache, as it was trained: its
    classes must be the dataset's (ImageNet weights for ImageNet-1K)."""
    from ddrank_steps.models import pretrained_classes

    classes = pretrained_classes(spec["model"], spec["model_options"])
    if classes != meta.num_classes:
        raise ConfigError(
            f"teacher {spec['model']} with pretrained weights predicts {classes} classes, but "
            f"dataset {meta.name} has {meta.num_classes}: drop `pretrained` to train it on "
            "the dataset, or give a checkpoint under teacher_dir"
        )
    net = build_model(
        spec["model"], classes, meta.channels, (meta.height, meta.width), spec["model_options"]
    )
    return net.eval().requires_grad_(False).to(device)


@torch.no_grad()
def ensemble_logits(
    images: torch.Tensor, teachers: Ensemble, batch_size: int, device: torch.device
) -> torch.Tensor:
    """The ensemble's logits of every image, computed `batch_size` images at a time on
    `device` and returned as float on the CPU."""
    out = [
        teachers(images[i : i + batch_size].to(device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def save_checkpoint(path: str, state_dict: dict, arch: dict, info: dict) -> None:
    from ddrank_steps.runtime.atomic_write import save_torch

    save_torch(path, {"state_dict": state_dict, "arch": arch, "info": info})
