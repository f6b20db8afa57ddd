"""Building a protocol's per-image transforms from the reference's YAML list.

A protocol's `train_transforms` / `test_transforms` are written as in the reference's
configs (`custom_train_trans` / `custom_val_trans`):

    - name: RandomResizedCrop
      args: {size: 64, scale: [0.08, 1.0]}
    - name: RandomHorizontalFlip
      args: [0.5]

`args` is a mapping of keyword arguments, a list of positional ones, or absent. Each name is
looked up in torchvision.transforms.v2, then in torchvision.transforms for a name only the
old API has; the result is a v2 Compose. Beyond the reference: positional args work for v2
names too; an argument that is itself a list of `{name, args}` items is built into a list of
transforms, so RandomApply / RandomChoice can nest; `interpolation: bilinear`,
`dtype: float32` and AutoAugment's `policy: cifar10` may be written as strings.

A name with a colon, `mypackage.module:ShufflePatches`, is a transform class of the user's
own, imported by that path and built with `args` like any other (the reference's RDED and
EDC evaluations use such a class). Importing it runs its module's code, by design; the
module must be importable wherever the jobs run (installed, or on PYTHONPATH).
`transforms.from_torchvision.compose_to_spec` writes a Python Compose in this format.

Unknown names and arguments a transform's constructor rejects are ConfigErrors naming the
item; `check_transforms` runs the same checks when the config is read. Values that a
constructor accepts but a call would reject (a zero std in Normalize) surface only when the
transform first runs.

`transforms.batches` applies the built lists to training batches and test splits; the plan
gives every term of a score the same `test_transforms` (the reference tests the terms of
one score under different transforms, see its flaws list).
"""

from __future__ import annotations

import difflib
import enum
import importlib
import warnings
from collections.abc import Mapping

import torch

from ddrank_steps.errors import ConfigError

_ITEM_KEYS = ("name", "args")


def build_transforms(spec: list[dict] | None, where: str = "transforms"):
    """A torchvision.transforms.v2.Compose for `spec`; None for no transforms. Errors name
    the item as `{where}[i]`."""
    if spec is None:
        return None
    from torchvision.transforms import v2

    return v2.Compose(_build_list(spec, where))


def check_transforms(spec: list[dict] | None, where: str = "transforms") -> None:
    """Raise ConfigError if `spec` would not build (config-time validation)."""
    build_transforms(spec, where)


def available_transforms() -> list[str]:
    from torchvision import transforms as v1
    from torchvision.transforms import v2

    return sorted({n for module in (v2, v1) for n in dir(module) if _transform_class(module, n)})


def _build_list(spec: object, where: str) -> list:
    if not isinstance(spec, list):
        raise ConfigError(
            f"{where} must be a list of {{name: <transform>, args: ...}} items, got {spec!r}"
        )
    return [_build_item(item, f"{where}[{i}]") for i, item in enumerate(spec)]


def _build_item(item: object, where: str):
    if not isinstance(item, Mapping) or "name" not in item:
        raise ConfigError(f"{where} must be a mapping with a 'name' (and 'args'), got {item!r}")
    extra = [k for k in item if k not in _ITEM_KEYS]
    if extra:
        raise ConfigError(f"{where} has unknown keys {extra}; an item has only {_ITEM_KEYS}")
    name = item["name"]
    cls = _lookup(name, where)
    args = item.get("args")
    where = f"{where} ({name})"
    if args is None:
        positional, keywords = [], {}
    elif isinstance(args, Mapping):
        positional = []
        keywords = {str(k): _value(str(k), v, f"{where}.{k}") for k, v in args.items()}
    elif isinstance(args, list):
        positional = [_value("", v, f"{where}[{i}]") for i, v in enumerate(args)]
        keywords = {}
    else:
        raise ConfigError(
            f"{where}: args must be a mapping (keyword arguments) or a list (positional "
            f"arguments), got {args!r}; e.g. args: [{args!r}]"
        )
    try:
        with warnings.catch_warnings():
            # every reference list has ToTensor; where it runs (on PIL images) it still works
            warnings.filterwarnings("ignore", message=r"The transform `ToTensor\(\)` is deprecated")
            return cls(*positional, **keywords)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad args {args!r}: {exc}") from None


def _lookup(name: object, where: str):
    from torchvision import transforms as v1
    from torchvision.transforms import v2

    if isinstance(name, str) and ":" in name:
        return import_transform(name, where)
    if isinstance(name, str):
        for module in (v2, v1):
            cls = _transform_class(module, name)
            if cls is not None:
                return cls
    close = difflib.get_close_matches(str(name), available_transforms(), n=5, cutoff=0.6)
    hint = (
        f"; did you mean {close}?"
        if close
        else " (see torchvision.transforms.v2; a class of your own is named by import path, "
        "'package.module:ClassName')"
    )
    raise ConfigError(f"{where}: unknown transform {name!r}{hint}")


def import_transform(path: str, where: str = "transforms") -> type:
    """The class that `path` (`package.module:Class`, `Class` may be dotted) names; errors
    name the list item and the fix."""
    module_name, _, qualname = path.partition(":")
    form = "the form 'package.module:ClassName'"
    if not module_name or not qualname or ":" in qualname:
        raise ConfigError(f"{where}: transform {path!r} is not an import path of {form}")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{where}: cannot import module {module_name!r} of transform {path!r} ({exc}); "
            "install its package or put its folder on PYTHONPATH, for this process and the "
            "workflow's jobs"
        ) from None
    except Exception as exc:  # the user's module raised while being imported
        raise ConfigError(
            f"{where}: importing module {module_name!r} of transform {path!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"{where}: module {module_name!r} has no {qualname!r} (transform {path!r}); "
                f"check the name after the colon, {form}"
            )
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise ConfigError(
            f"{where}: {path!r} is a {type(obj).__name__}, not a class; name a transform "
            "class, whose args the list gives"
        )
    return obj


def _transform_class(module, name: str):
    if name.startswith("_"):
        return None
    obj = getattr(module, name, None)
    if not isinstance(obj, type) or issubclass(obj, enum.Enum):
        return None  # functions, submodules and enums (InterpolationMode) are not transforms
    return obj


def _value(key: str, value: object, where: str):
    if _is_spec_list(value):
        return _build_list(value, where)
    if key == "interpolation" and isinstance(value, str):
        from torchvision.transforms import InterpolationMode

        try:
            return InterpolationMode(value.lower())
        except ValueError:
            valid = [m.value for m in InterpolationMode]
            raise ConfigError(f"{where}: interpolation {value!r} is not one of {valid}") from None
    if key == "policy" and isinstance(value, str):
        from torchvision.transforms import AutoAugmentPolicy

        try:
            return AutoAugmentPolicy(value.lower())
        except ValueError:
            valid = [m.value for m in AutoAugmentPolicy]
            raise ConfigError(f"{where}: policy {value!r} is not one of {valid}") from None
    if key == "dtype" and isinstance(value, str):
        dtype = getattr(torch, value.removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise ConfigError(f"{where}: {value!r} is not a torch dtype (e.g. float32)")
        return dtype
    return value


def _is_spec_list(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(v, Mapping) and "name" in v for v in value)
    )
