"""Model registry: strict name parsing and one builder per family.

Names follow the reference: `Family-Depth[-Norm]` (`ConvNet-3`, `ResNet-18-BN`, `VGG-11`),
the bare family for networks without a depth (`AlexNet`, `LeNet`, `MLP`),
`torchvision:<name>` for any torchvision classification model (`torchvision:resnet18`),
the same model by its bare torchvision name (`resnet18`, `vgg11`, `vit_b_16`: the
reference's naming convention; a bare name is never one of ours, which are capitalised or
carry a depth), and `timm:<name>` for a timm model (timm is an optional extra).
Unlike the reference, an unknown family, depth or norm suffix is an error listing the valid
choices (the reference silently falls back to instance norm, or crashes on a bad depth).
`torchvision:` and `timm:` models take `model_options: {pretrained: …}`: weights from the
local torch hub or Hugging Face cache, never downloaded (ddrank_steps/models/pretrained.py).

Norm suffixes: -BN batch norm, -IN instance norm (GroupNorm(C, C), the DC default), -GN
group norm (4 groups), -LN layer norm, -NN no norm; each family lists the ones it has.
The DC-style AlexNet, VGG and ResNet have a torchvision-style twin, chosen with
`model_options: {torchvision: true}` (the reference's `use_torchvision`).

Every family takes `channels` (our digits and MNIST have 1; the reference always builds 3)
and any input size its depth allows; the parameter count at 3 channels and 32 or 64 px
equals the reference's for the same name (tests/test_models_zoo.py has the table).

The family modules are imported only when a name of their family is parsed, checked or
built (`FAMILY_MODULES`, through importlib): importing this package stays torch-free, and a
job's code inputs (ddrank_steps/planning/code_inputs.py) name only the family its model belongs to.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ddrank_steps.errors import ConfigError

# suffix -> norm name used by the builders; no suffix means the family default
NORM_SUFFIXES = {
    "BN": "batchnorm",
    "IN": "instancenorm",
    "GN": "groupnorm",
    "LN": "layernorm",
    "NN": "none",
}
TORCHVISION_PREFIX = "torchvision:"
TORCHVISION_FAMILY = "torchvision"  # the family of every `torchvision:<name>` and bare name
TIMM_PREFIX = "timm:"
TIMM_FAMILY = "timm"  # the family of every `timm:<name>`
# families written `<prefix><name>` rather than `Family-Depth`
PREFIXED_FAMILIES = {TORCHVISION_PREFIX: TORCHVISION_FAMILY, TIMM_PREFIX: TIMM_FAMILY}

# family name -> its module under ddrank_steps.models, imported on first use. Plain strings
# (no import statement names them), so the static import walk of code_inputs does not pull
# every family into every job's code inputs.
FAMILY_MODULES = {
    "ConvNet": "convnet",
    "AlexNet": "alexnet",
    "VGG": "vgg",
    "ResNet": "resnet",
    "LeNet": "lenet",
    "MLP": "mlp",
    TORCHVISION_FAMILY: "torchvision_models",
    TIMM_FAMILY: "timm_models",
}


@dataclass(frozen=True)
class ModelSpec:
    family: str
    depth: int | None  # None for families without a depth (AlexNet, LeNet, MLP, torchvision:)
    norm: str | None  # one of NORM_SUFFIXES' values; None where the name cannot choose one
    arch: str | None = None  # the torchvision or timm model name of `torchvision:<arch>`


@dataclass(frozen=True)
class Family:
    builder: Callable  # (spec, channels, num_classes, im_size, **options) -> nn.Module
    depths: tuple[int, ...] | None  # None: any positive depth
    default_norm: str | None
    norms: tuple[str, ...]
    options: tuple[str, ...]  # model_options keys this family accepts
    has_depth: bool = True  # False: the name is the bare family (AlexNet)
    # Checks option values (and their fit with the name) without building anything, so a
    # bad value is reported when the config is read, not when a job starts.
    check_options: Callable[[str, ModelSpec, dict], None] | None = None
    # The value of every option left out, and the one spelling of values that have several:
    # what `canonical_options` fills in, so `{}` and `{width: 128}` key the same run.
    option_defaults: dict = field(default_factory=dict)
    # (spec, options with defaults) -> the one spelling (`pretrained: true` -> the weights)
    spell_options: Callable[[ModelSpec, dict], dict] | None = None
    # (spec, options) -> the class count of the pretrained weights the options name, or None
    pretrained_classes: Callable[[ModelSpec, dict], int | None] | None = None


# The families loaded so far (from FAMILY_MODULES, on first use) or registered directly.
FAMILIES: dict[str, Family] = {}


def bare_family(
    builder: Callable, options: tuple[str, ...] = (), check_options=None, option_defaults=None
) -> Family:
    """A family named without depth or norm suffix (AlexNet, LeNet, MLP)."""
    return Family(
        builder=builder,
        depths=None,
        default_norm="none",
        norms=("none",),
        options=options,
        has_depth=False,
        check_options=check_options,
        option_defaults=option_defaults or {},
    )


def library_family(
    builder: Callable,
    options: tuple[str, ...],
    check_options: Callable,
    spell_options: Callable,
    pretrained_classes: Callable,
) -> Family:
    """A model library's family (`torchvision:<name>`, `timm:<name>`): the name after the
    prefix is the architecture, with no depth or norm suffix, and `pretrained` (off unless
    set) may name weights from the local cache."""
    return Family(
        builder=builder,
        depths=None,
        default_norm=None,
        norms=(),
        options=options,
        has_depth=False,
        check_options=check_options,
        option_defaults={"pretrained": False},
        spell_options=spell_options,
        pretrained_classes=pretrained_classes,
    )


def register_family(name: str, family: Family) -> None:
    FAMILIES[name] = family


def _known_families() -> list[str]:
    """Every family name, loaded or not (dict order: the built-in ones, then registered)."""
    return list(dict.fromkeys([*FAMILY_MODULES, *FAMILIES]))


def _family_names() -> list[str]:
    prefixed = set(PREFIXED_FAMILIES.values())
    names = sorted(n for n in _known_families() if n not in prefixed)
    return [*names, *(f"{prefix}<name>" for prefix in PREFIXED_FAMILIES)]


def _prefixed_family(name: str) -> str | None:
    """The family of a `torchvision:<name>` or `timm:<name>` model name, else None."""
    for prefix, family_name in PREFIXED_FAMILIES.items():
        if name.startswith(prefix):
            return family_name
    return None


def _may_be_bare_torchvision_name(name: str) -> bool:
    """Torchvision's names are lowercase identifiers without '-': a name with a dash, or
    the bare word of a prefixed family, is never one (and needs no torchvision import)."""
    return bool(name) and "-" not in name and name not in PREFIXED_FAMILIES.values()


def family_module(name: str) -> str | None:
    """The module of the built-in family of model `name` (`ddrank_steps.models.vgg` for
    `VGG-11`), without importing it; None for a name of no built-in family. Torch-free, for
    the code inputs of a job (ddrank_steps/planning/code_inputs.py)."""
    name = str(name)
    family_name = _prefixed_family(name)
    if family_name is None:
        family_name = name.split("-")[0]
        if family_name in PREFIXED_FAMILIES.values():  # a bare 'torchvision' names no model
            return None
        if family_name not in FAMILY_MODULES and _may_be_bare_torchvision_name(name):
            family_name = TORCHVISION_FAMILY  # `resnet18` (the planner has checked the name)
    module = FAMILY_MODULES.get(family_name)
    return None if module is None else f"{__name__}.{module}"


def _family(family_name: str) -> Family:
    """The family called `family_name`, importing its module on first use."""
    if family_name not in FAMILIES:
        module = importlib.import_module(f"{__name__}.{FAMILY_MODULES[family_name]}")
        register_family(module.FAMILY_NAME, module.FAMILY)
    return FAMILIES[family_name]


def parse_model_name(name: str) -> ModelSpec:
    """Parse a model name strictly; every mistake names the valid choices."""
    name = str(name)
    prefixed = _prefixed_family(name)
    if prefixed is not None:
        return importlib.import_module(f"{__name__}.{FAMILY_MODULES[prefixed]}").parse(name)
    parts = name.split("-")
    family_name = parts[0]
    known = [n for n in _known_families() if n not in PREFIXED_FAMILIES.values()]
    if family_name not in known:
        return _parse_bare_torchvision_name(name, family_name, known)
    family = _family(family_name)
    if not family.has_depth:
        if len(parts) != 1:
            raise ConfigError(
                f"unknown model '{name}': {family_name} takes no depth or norm suffix; "
                f"write '{family_name}'"
            )
        return ModelSpec(family_name, None, family.default_norm)
    return _parse_depth_and_norm(name, parts, family)


def _parse_bare_torchvision_name(name: str, family_name: str, known: list[str]) -> ModelSpec:
    """A name of no family of ours: a bare torchvision name (`resnet18`), or an error
    naming the families and the closest names."""
    close = difflib.get_close_matches(family_name, known, n=3)
    if _may_be_bare_torchvision_name(name):
        torchvision_models = importlib.import_module(
            f"{__name__}.{FAMILY_MODULES[TORCHVISION_FAMILY]}"
        )
        if name in torchvision_models.classification_models():
            return ModelSpec(TORCHVISION_FAMILY, None, None, name)
        close += difflib.get_close_matches(
            name, torchvision_models.classification_models(), n=3, cutoff=0.7
        )
    hint = f"; did you mean {close}?" if close else ""
    what = (
        f"'{name}' is neither a torchvision classification model nor a family of"
        if _may_be_bare_torchvision_name(name)
        else f"family '{family_name}' is not one of"
    )
    raise ConfigError(
        f"unknown model '{name}': {what} {_family_names()}{hint} (names look like "
        "ConvNet-3, ResNet-18-BN, AlexNet, a torchvision name such as resnet18, "
        "or timm:resnet18)"
    )


def _parse_depth_and_norm(name: str, parts: list[str], family: Family) -> ModelSpec:
    """`Family-Depth[-Norm]`, split at '-' into `parts`, of a family with a depth."""
    family_name = parts[0]
    valid_suffixes = [s for s, n in NORM_SUFFIXES.items() if n in family.norms]
    if len(parts) < 2 or len(parts) > 3:
        raise ConfigError(
            f"unknown model '{name}': expected '{family_name}-<depth>[-<norm>]', "
            f"norm one of {valid_suffixes}"
        )
    try:
        depth = int(parts[1])
    except ValueError:
        raise ConfigError(f"unknown model '{name}': depth '{parts[1]}' is not an integer") from None
    if depth < 1 or (family.depths is not None and depth not in family.depths):
        valid = "any positive integer" if family.depths is None else list(family.depths)
        raise ConfigError(f"unknown model '{name}': depth {depth} not in {valid}")
    norm = family.default_norm
    if len(parts) == 3:
        suffix = parts[2]
        if suffix not in valid_suffixes:
            raise ConfigError(
                f"unknown model '{name}': norm suffix '{suffix}' is not one of {valid_suffixes}"
            )
        norm = NORM_SUFFIXES[suffix]
    return ModelSpec(family_name, depth, norm)


def check_model_options(name: str, options: dict | None) -> None:
    """Check a model name and its options without building the model (config time)."""
    spec = parse_model_name(name)
    family = _family(spec.family)
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"model_options must be a mapping, got {options!r}")
    for key in options or {}:
        if key not in family.options:
            raise ConfigError(
                f"model_options.{key} is not an option of {spec.family}; "
                f"valid: {list(family.options)}"
            )
    if family.check_options is not None:
        family.check_options(name, spec, dict(options or {}))


def canonical_options(name: str, options: dict | None) -> dict:
    """Every option of the model's family with the value it takes (defaults filled in,
    one spelling per value): equal models get equal options, and so one cache key."""
    check_model_options(name, options)
    spec = parse_model_name(name)
    family = _family(spec.family)
    full = {**family.option_defaults, **(options or {})}
    return family.spell_options(spec, full) if family.spell_options else full


def pretrained_classes(name: str, options: dict | None) -> int | None:
    """How many classes the pretrained weights named by `options` (`pretrained: …` of a
    torchvision or timm model) were trained for (1000 for ImageNet weights); None when the
    model is not pretrained. A model built with that many classes is the pretrained
    network itself, every layer loaded: usable as a teacher without training."""
    check_model_options(name, options)
    spec = parse_model_name(name)
    family = _family(spec.family)
    if family.pretrained_classes is None:
        return None
    return family.pretrained_classes(spec, dict(options or {}))


def pretrained_twin(name: str, options: dict | None) -> tuple[str, dict] | None:
    """(name, options) of the ImageNet-pretrained model that model `name` is, as the
    reference builds a teacher with no checkpoint (`pretrained=True`): a torchvision or timm
    name with its default weights, and the torchvision-style ResNet (`torchvision: true`)
    as torchvision's resnet of its depth. None for a model with no such weights (the DC
    nets). Whether the weights are in the local cache is `check_model_options`'s to say."""
    spec = parse_model_name(name)
    if spec.family in (TORCHVISION_FAMILY, TIMM_FAMILY):
        return name, {**(options or {}), "pretrained": True}
    if spec.family == "ResNet" and (options or {}).get("torchvision"):
        return f"{TORCHVISION_PREFIX}resnet{spec.depth}", {"pretrained": True}
    return None


def canonical_model_name(name: str) -> str:
    """The one spelling of a model name: a bare torchvision name becomes
    `torchvision:<name>` (the same model), every other name stays as written."""
    spec = parse_model_name(name)
    if spec.family == TORCHVISION_FAMILY:
        return f"{TORCHVISION_PREFIX}{spec.arch}"
    return str(name)


def use_torchvision_options(name: str, use_torchvision: bool) -> dict:
    """The `model_options` that the reference's `use_torchvision` (`stu_use_torchvision`,
    `tea_use_torchvision`) means for model `name`: `{torchvision: true}` for the families
    with a torchvision twin (AlexNet, VGG, ResNet), nothing for every other model, where
    the reference ignores the flag (a torchvision or timm name is that library's model
    anyway). The flag's errors are the option's (`ResNet-18` has no torchvision twin with
    instance norm: write ResNet-18-BN)."""
    if not isinstance(use_torchvision, bool):
        raise ConfigError(f"use_torchvision must be true or false, got {use_torchvision!r}")
    family = _family(parse_model_name(name).family)
    if not use_torchvision or "torchvision" not in family.options:
        return {}
    options = {"torchvision": True}
    check_model_options(name, options)
    return options


def largest_fitting_model(
    name: str, options: dict | None, im_size: tuple[int, int], channels: int = 3
) -> str | None:
    """`name` if the model builds for images of `im_size`, else the same model at the
    largest depth that does (None when no depth does, or the family has no depth).
    Built on the meta device: no memory, no weights."""
    import torch

    # the architecture only: pretrained weights change no size, and are not read here
    options = {k: v for k, v in (options or {}).items() if k != "pretrained"}

    def fits(candidate: str) -> bool:
        try:
            with torch.device("meta"):
                build_model(candidate, 10, channels, im_size, options)
        except ConfigError:
            return False
        return True

    if fits(name):
        return name
    spec = parse_model_name(name)
    family = _family(spec.family)
    if spec.depth is None or name.startswith(TORCHVISION_PREFIX):
        return None
    depths = family.depths if family.depths is not None else range(1, spec.depth)
    parts = name.split("-")
    for depth in sorted((d for d in depths if d < spec.depth), reverse=True):
        candidate = "-".join([parts[0], str(depth), *parts[2:]])
        if fits(candidate):
            return candidate
    return None


def build_model(
    name: str,
    num_classes: int,
    channels: int,
    im_size: tuple[int, int],
    options: dict | None = None,
):
    """Build a freshly initialised model (init uses the global torch RNG: seed it first);
    with `pretrained` (torchvision and timm models), then loaded from the local cache."""
    spec = parse_model_name(name)
    check_model_options(name, options)
    for what, value in (("num_classes", num_classes), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}: {what} must be a positive integer, got {value!r}")
    im_size = tuple(int(s) for s in im_size)
    if len(im_size) != 2 or min(im_size) < 1:
        raise ConfigError(f"{name}: im_size must be (height, width), got {im_size!r}")
    family = _family(spec.family)
    return family.builder(spec, channels, num_classes, im_size, **(options or {}))


def available_models() -> list[str]:
    return _family_names()
