"""A Python torchvision pipeline written as a protocol's transform list.

DD-Ranking users pass `custom_train_trans=transforms.Compose([...])` (v1 or v2) to the
evaluators; a ddrank job cannot receive a Python object, so `compose_to_spec` writes the
pipeline in the config's list format (`[{name, args}]`, see transforms.build), which then
keys the runs like any written list:

- each transform becomes its torchvision class name, or `package.module:Class` for a class
  of the user's own (it must be importable by that path: not defined in `__main__` or in a
  function);
- its arguments are recovered from the instance: for each parameter of the class's
  `__init__`, the attribute of the same name (torchvision keeps most of them so), with the
  few that torchvision stores differently read back by hand (`_STORED_DIFFERENTLY`);
  arguments equal to their default are left out; enums become their strings
  (`interpolation: bilinear`), dtypes their names, tensors lists, tuples lists;
- nested transforms (RandomApply's list) become nested lists, and a Compose inside the
  Compose is flattened into it;
- conversions (ToTensor, ToImage…) are kept: the batch code skips them.

Every item is then rebuilt from its list entry and compared with the given transform,
attribute by attribute: an argument that was not recovered faithfully is an error, never
a silently different pipeline. So is anything without recoverable arguments (a lambda, a
plain function, `transforms.Lambda`, a class whose `__init__` stores its arguments under
other names or takes `*args`): the error says how to name it instead, by import path with
its args.
"""

from __future__ import annotations

import enum
import functools
import importlib
import inspect
from collections.abc import Mapping

import torch

from ddrank_steps.errors import ConfigError

_HOW = (
    "write it as a list item instead, e.g. {name: 'mypackage.module:MyTransform', "
    "args: {...}} (a class importable by that path, built with those keyword arguments)"
)
_MODULE_STATE = {"training"}


def _how(name: str) -> str:
    """The fix for an item of class `name` whose args cannot be recovered."""
    if ":" not in name:
        return f"write it as a list item instead, {{name: {name}, args: {{...}}}}"
    return (
        f"write it as a list item instead, {{name: '{name}', args: {{...}}}}, or keep each "
        "__init__ argument in an attribute of the same name so it can be translated"
    )  # nn.Module's own attribute on every v2 transform


def compose_to_spec(obj, where: str = "transforms") -> list[dict] | None:
    """The list-of-`{name, args}` form of a torchvision `Compose` (v1 or v2), a list of
    transforms, or a single transform; None for None. Errors (ConfigError) name the item
    as `{where}[i]`."""
    if obj is None:
        return None
    return [_item(t, f"{where}[{i}]") for i, t in enumerate(_flatten(obj))]


def _is_compose(obj) -> bool:
    return type(obj).__name__ == "Compose" and type(obj).__module__.startswith("torchvision.")


def _flatten(obj) -> list:
    if _is_compose(obj):
        obj = obj.transforms
    if isinstance(obj, list | tuple | torch.nn.ModuleList):
        return [t for item in obj for t in (_flatten(item) if _is_compose(item) else [item])]
    return [obj]


def _item(transform, where: str) -> dict:
    if isinstance(transform, Mapping) and "name" in transform:
        return dict(transform)  # already a list item: the builder checks it
    _refuse_callables(transform, where)
    cls = type(transform)
    name = _name(cls, where)
    args = _args(transform, cls, name, where)
    item = {"name": name, "args": args} if args else {"name": name}
    _check_rebuilt(transform, item, where)
    return item


def _refuse_callables(transform, where: str) -> None:
    what = None
    if isinstance(transform, type):
        what = f"the class {transform.__name__} itself, not an instance of it"
    elif isinstance(transform, functools.partial):
        what = "a functools.partial"
    elif inspect.isfunction(transform) or inspect.ismethod(transform):
        kind = "a lambda" if transform.__name__ == "<lambda>" else "a plain function"
        what = f"{kind} ({transform.__qualname__})"
    elif inspect.isbuiltin(transform) or inspect.isroutine(transform):
        what = f"a function ({getattr(transform, '__name__', transform)!r})"
    elif type(transform).__name__ == "Lambda" and type(transform).__module__.startswith(
        "torchvision."
    ):
        what = "transforms.Lambda (its function cannot be written in a config)"
    if what is not None:
        raise ConfigError(f"{where}: cannot translate {what}; {_HOW}")


def _name(cls: type, where: str) -> str:
    """torchvision's name where the list builder finds this class (or its v1/v2 twin)
    under it, else `module:qualname`."""
    from ddrank_steps.transforms.build import _lookup

    if cls.__module__.startswith("torchvision.transforms"):
        try:
            found = _lookup(cls.__name__, where)
        except ConfigError:
            found = None
        if found is not None and found.__name__ == cls.__name__:
            return cls.__name__
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        place = "__main__" if module == "__main__" else "a function"
        raise ConfigError(
            f"{where}: {qualname} is defined in {place}, where the workflow's jobs cannot "
            f"import it; move it into a module and {_HOW}"
        )
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not cls:
        raise ConfigError(f"{where}: {module}:{qualname} does not import back as {cls}; {_HOW}")
    return f"{module}:{qualname}"


def _stored_padding_v2(transform):
    # v2.RandomCrop keeps (left, right, top, bottom); its argument is (left, top, right, bottom)
    if transform.padding is None:
        return None
    left, right, top, bottom = transform.padding
    return [left, top, right, bottom]


_AS_DEFAULT = object()  # a reader's answer: the argument was left at its default


def _stored_jitter(param: str):
    # ColorJitter keeps None for no jitter, which v1's __init__ refuses (its default is 0)
    def read(transform):
        value = getattr(transform, param)
        return _AS_DEFAULT if value is None else value

    return read


# (module prefix, class name, parameter) -> how to read the argument back
_STORED_DIFFERENTLY = {
    ("torchvision.transforms.v2", "RandomCrop", "padding"): _stored_padding_v2,
    **{
        ("torchvision.transforms", "ColorJitter", param): _stored_jitter(param)
        for param in ("brightness", "contrast", "saturation", "hue")
    },
}


def _recover(transform, cls: type, param: str):
    for (module, name, key), read in _STORED_DIFFERENTLY.items():
        if cls.__module__.startswith(module) and cls.__name__ == name and key == param:
            return read(transform)
    if not hasattr(transform, param):
        raise AttributeError(param)
    return getattr(transform, param)


def _args(transform, cls: type, name: str, where: str) -> dict:
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} has no inspectable __init__; {_how(name)}") from None
    args = {}
    for param in list(signature.parameters.values())[1:]:  # after self
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(
                f"{where}: {name} takes *{param.name}, which cannot be recovered from an "
                f"instance; {_how(name)}"
            )
        try:
            value = _recover(transform, cls, param.name)
        except AttributeError:
            raise ConfigError(
                f"{where}: the args of {name} cannot be recovered: it keeps no attribute "
                f"{param.name!r} for its __init__ argument of that name; {_how(name)}"
            ) from None
        if value is _AS_DEFAULT:
            continue
        value = _plain(value, param.name, f"{where} ({name}).{param.name}")
        if param.default is not param.empty and _same_default(value, param.default):
            continue
        args[param.name] = value
    return args


def _same_default(value, default) -> bool:
    try:
        return _plain(default, "", "") == value
    except ConfigError:
        return False


def _plain(value, key: str, where: str):
    """`value` as the config writes it (YAML-friendly), or a ConfigError."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, torch.Tensor):
        return _tensor_values(value)
    if _is_transform(value):
        return compose_to_spec(value, where) if _is_compose(value) else _item(value, where)
    if isinstance(value, list | tuple | torch.nn.ModuleList):
        items = list(value)
        if items and all(_is_transform(v) for v in items):
            return compose_to_spec(items, where)
        return [_plain(v, "", f"{where}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ConfigError(
                f"{where}: {value!r} has keys that are not strings (per-type fills?); "
                f"cannot be written in a config; {_HOW}"
            )
        return {k: _plain(v, k, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(
        f"{where}: a {type(value).__name__} ({value!r}) cannot be written in a config; {_HOW}"
    )


def _tensor_values(tensor: torch.Tensor):
    """A tensor as (nested) lists; float32 numbers in their shortest form (0.485, not
    0.48500001430511475), which reads back as the same float32."""
    if tensor.dtype != torch.float32:
        return tensor.tolist()
    import numpy as np

    def short(x: float) -> float:
        return float(np.format_float_positional(np.float32(x), unique=True, trim="0"))

    def walk(values):
        return [walk(v) for v in values] if isinstance(values, list) else short(values)

    return walk(tensor.tolist())


def _is_transform(value) -> bool:
    """A transform object (callable instance with state), not data."""
    return (
        callable(value)
        and not isinstance(value, type | torch.Tensor | enum.Enum)
        and hasattr(value, "__dict__")
    )


def _check_rebuilt(transform, item: dict, where: str) -> None:
    """Raise unless `item` builds (as the list builder does: a v1 name gives its v2 twin)
    and its args, given to the transform's own class, rebuild the given transform: same
    stored attributes (nested transforms are checked as items of their own)."""
    from ddrank_steps.transforms import build

    try:
        build.build_transforms([item], where)
        kwargs = {k: build._value(k, v, where) for k, v in item.get("args", {}).items()}
        rebuilt = type(transform)(**kwargs)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: {item} does not rebuild the given transform ({exc}); {_how(item['name'])}"
        ) from None
    difference = _difference(transform, rebuilt)
    if difference:
        raise ConfigError(
            f"{where}: the args of {item['name']} were not recovered faithfully "
            f"({difference}); {_how(item['name'])}"
        )


def _state(transform) -> dict:
    return {
        k: v for k, v in vars(transform).items() if not k.startswith("_") and k not in _MODULE_STATE
    }


def _difference(given, rebuilt, path: str = "", nested: bool = False) -> str | None:
    """The first attribute (path) where two transforms differ, or None. Nested ones are
    compared by class only: `_item` checked each against its own rebuild, and the list
    builder makes v2 twins of v1 ones, which store some arguments in other forms."""
    if type(given).__name__ != type(rebuilt).__name__:
        return f"{path or 'class'}: {type(given).__name__} vs {type(rebuilt).__name__}"
    if nested:
        return None
    ours, theirs = _state(given), _state(rebuilt)
    for key in sorted(ours.keys() & theirs.keys()):
        found = _value_difference(ours[key], theirs[key], f"{path}{key}")
        if found:
            return found
    return None


def _value_difference(a, b, path: str) -> str | None:
    if _is_transform(a) and _is_transform(b):
        return _difference(a, b, f"{path}.", nested=True)
    a, b = (v.value if isinstance(v, enum.Enum) else v for v in (a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = torch.equal(torch.as_tensor(a), torch.as_tensor(b))
        return None if same else f"{path}: {a!r} vs {b!r}"
    if isinstance(a, list | tuple | torch.nn.ModuleList) and isinstance(
        b, list | tuple | torch.nn.ModuleList
    ):
        if len(a) != len(b):
            return f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _value_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    try:
        same = bool(a == b)
    except Exception:  # values that cannot be compared: not ours to judge
        return None
    return None if same else f"{path}: {a!r} vs {b!r}"
