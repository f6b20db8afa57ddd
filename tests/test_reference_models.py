"""The reference's model names (issue #11, item 4): bare torchvision names, `timm:<name>`,
the `use_torchvision` flags, and pretrained weights read from the local caches only.

Nothing here downloads: the weight files are written by the tests into a temporary
TORCH_HOME / Hugging Face cache, and every download function is replaced by one that fails.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from ddrank_steps.errors import ConfigError
from ddrank_steps.models import (
    ModelSpec,
    available_models,
    build_model,
    canonical_model_name,
    canonical_options,
    check_model_options,
    family_module,
    parse_model_name,
    pretrained_classes,
    use_torchvision_options,
)

HAS_TIMM = importlib.util.find_spec("timm") is not None
needs_timm = pytest.mark.skipif(not HAS_TIMM, reason="timm is not installed (the [timm] extra)")


def seeded(name: str, options: dict | None = None, classes: int = 10, channels: int = 3):
    torch.manual_seed(0)
    return build_model(name, classes, channels, (32, 32), options)


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args} {kwargs}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    if HAS_TIMM:
        import huggingface_hub
        import timm.models._hub as timm_hub

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
        monkeypatch.setattr(timm_hub, "hf_hub_download", refuse, raising=False)


# --- bare torchvision names -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "vit_b_16", "alexnet", "mobilenet_v3_small"])
def test_a_bare_torchvision_name_is_that_torchvision_model(name):
    assert parse_model_name(name) == ModelSpec("torchvision", None, None, name)
    assert parse_model_name(name) == parse_model_name(f"torchvision:{name}")
    assert canonical_model_name(name) == f"torchvision:{name}"
    assert canonical_options(name, {}) == canonical_options(f"torchvision:{name}", {})
    assert family_module(name) == "ddrank_steps.models.torchvision_models"


def test_a_bare_name_builds_the_same_network_as_the_prefixed_one():
    assert same_state(seeded("resnet18"), seeded("torchvision:resnet18"))
    assert seeded("vgg11").classifier[-1].out_features == 10


def test_our_names_keep_their_meaning_and_spelling():
    # the capitalised, dashed names are ours; torchvision's are lowercase words
    assert parse_model_name("AlexNet").family == "AlexNet"
    assert parse_model_name("alexnet").family == "torchvision"
    assert parse_model_name("VGG-11").family == "VGG"
    for name in ("ConvNet-3", "ResNet-18-BN", "AlexNet", "timm:resnet18"):
        assert canonical_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("resnet19", r"'resnet19' is neither a torchvision classification model.*resnet18"),
        ("Convnet", r"did you mean \['ConvNet'\]"),
        ("fasterrcnn_resnet50_fpn", r"neither a torchvision classification model"),
        ("torchvision", r"family 'torchvision' is not one of"),
        ("timm", r"family 'timm' is not one of"),
    ],
)
def test_a_name_of_nobody_lists_the_choices_and_close_matches(name, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_model_name(name)
    for form in ("ConvNet", "ResNet", "torchvision:<name>", "timm:<name>"):
        assert form in str(err.value)


def test_every_name_form_is_listed():
    assert available_models()[-2:] == ["torchvision:<name>", "timm:<name>"]


# --- the reference's use_torchvision flags --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flag", "options"),
    [
        ("ResNet-18-BN", True, {"torchvision": True}),
        ("VGG-11-BN", True, {"torchvision": True}),
        ("AlexNet", True, {"torchvision": True}),
        ("ResNet-18-BN", False, {}),
        ("ConvNet-3", True, {}),  # the reference ignores the flag for other families
        ("resnet18", True, {}),
        ("torchvision:vgg11", True, {}),
    ],
)
def test_use_torchvision_means_the_torchvision_twin_where_one_exists(name, flag, options):
    assert use_torchvision_options(name, flag) == options
    check_model_options(name, options)


def test_use_torchvision_keeps_the_twins_errors():
    with pytest.raises(ConfigError, match=r"torchvision's ResNets use batch norm"):
        use_torchvision_options("ResNet-18", True)
    with pytest.raises(ConfigError, match=r"must be true or false"):
        use_torchvision_options("ResNet-18-BN", "yes")


# --- pretrained torchvision weights from TORCH_HOME ----------------------------------------------


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def write_torchvision_weights(torch_home) -> dict:
    """A freshly built resnet18's state dict, where torchvision caches its DEFAULT weights."""
    import torchvision

    weights = torchvision.models.ResNet18_Weights.DEFAULT
    assert weights.url.endswith("/resnet18-f37072fd.pth")
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(123)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, folder / "resnet18-f37072fd.pth")
    return state


@pytest.mark.parametrize("name", ["resnet18", "torchvision:resnet18"])
def test_pretrained_torchvision_weights_come_from_the_local_cache(name, torch_home, no_downloads):
    state = write_torchvision_weights(torch_home)
    model = seeded(name, {"pretrained": True}, classes=1000)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_another_class_count_keeps_a_fresh_seeded_classifier(torch_home, no_downloads):
    state = write_torchvision_weights(torch_home)
    model = seeded("resnet18", {"pretrained": True}, classes=10)
    loaded = model.state_dict()
    for key in state:
        if key.startswith("fc."):
            assert loaded[key].shape[0] == 10
        else:
            assert torch.equal(loaded[key], state[key]), key
    # the head is the seeded init of the model without weights
    fresh = seeded("resnet18", {}, classes=10).state_dict()
    assert torch.equal(loaded["fc.weight"], fresh["fc.weight"])


def test_the_class_count_of_pretrained_weights_is_known(torch_home, hf_cache):
    write_torchvision_weights(torch_home)
    assert pretrained_classes("resnet18", {"pretrained": True}) == 1000
    assert pretrained_classes("resnet18", {}) is None
    assert pretrained_classes("ConvNet-3", {"width": 64}) is None
    if HAS_TIMM:
        write_timm_weights(hf_cache)
        assert pretrained_classes("timm:resnet18", {"pretrained": True}) == 1000
        assert pretrained_classes("timm:resnet18", {"pretrained": False}) is None


def test_pretrained_options_key_the_weights_not_their_spelling(torch_home):
    write_torchvision_weights(torch_home)
    spellings = [{"pretrained": True}, {"pretrained": "DEFAULT"}, {"pretrained": "IMAGENET1K_V1"}]
    keyed = [canonical_options("resnet18", s) for s in spellings]
    assert keyed == [{"pretrained": "IMAGENET1K_V1"}] * 3
    assert canonical_options("resnet18", {}) == canonical_options("resnet18", {"pretrained": False})
    assert canonical_options("resnet18", {}) != keyed[0]


def test_missing_torchvision_weights_name_the_path_and_the_fix(torch_home, no_downloads):
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(ConfigError) as err:
        check_model_options("resnet18", {"pretrained": True})
    message = str(err.value)
    assert str(expected) in message
    assert "never downloads" in message and "ResNet18_Weights.IMAGENET1K_V1" in message
    with pytest.raises(ConfigError, match="not in the local cache"):
        seeded("resnet18", {"pretrained": True})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("resnet18", {"pretrained": "IMAGENET1K_V9"}, r"one of its weights \['IMAGENET1K_V1'\]"),
        ("resnet18", {"pretrained": 1}, r"must be true .*, false, or one of its weights"),
        ("ConvNet-3", {"pretrained": True}, r"pretrained is not an option of ConvNet"),
        ("resnet18", {"width": 3}, r"width is not an option of torchvision; valid: \['pretrained'"),
    ],
)
def test_bad_pretrained_options_are_config_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        check_model_options(name, options)


def test_pretrained_torchvision_weights_need_three_channels(torch_home, no_downloads):
    write_torchvision_weights(torch_home)
    with pytest.raises(ConfigError, match=r"take 3-channel images and this dataset has 1"):
        seeded("resnet18", {"pretrained": True}, channels=1)


# --- timm --------------------------------------------------------------------------------------


def test_without_timm_a_timm_name_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    with pytest.raises(
        ConfigError, match=r'need timm, an optional extra: pip install -e "\.\[timm\]"'
    ):
        parse_model_name("timm:resnet18")
    # ours and torchvision's do not need it
    assert parse_model_name("resnet18").family == "torchvision"
    assert family_module("timm:resnet18") == "ddrank_steps.models.timm_models"


@needs_timm
def test_a_timm_name_is_timms_model_for_the_datasets_classes_and_channels():
    import timm

    assert parse_model_name("timm:resnet18") == ModelSpec("timm", None, None, "resnet18")
    model = seeded("timm:resnet18", channels=1)
    torch.manual_seed(0)
    expected = timm.create_model("resnet18", num_classes=10, in_chans=1)
    assert same_state(model, expected)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert canonical_options("timm:resnet18", {}) == {"pretrained": False}


@needs_timm
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("timm:resnet19", r"'resnet19' is not a timm model \(closest: \['resnet18'"),
        ("timm:resnet18.bogus", r"'bogus' is not a pretrained tag of resnet18; tags: \['a1_in1k'"),
        ("timm:", r"'' is not a timm model"),
    ],
)
def test_bad_timm_names_are_config_errors(name, message):
    with pytest.raises(ConfigError, match=message):
        parse_model_name(name)


@needs_timm
def test_a_timm_model_too_big_for_the_images_is_a_config_error():
    with pytest.raises(ConfigError, match=r"timm:vit_tiny_patch16_224 cannot take 3x32x32"):
        seeded("timm:vit_tiny_patch16_224")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def write_timm_weights(hf_cache, repo: str = "timm/resnet18.a1_in1k") -> dict:
    """A fresh timm resnet18's state dict, where the Hugging Face cache keeps `repo`."""
    import timm
    from safetensors.torch import save_file

    folder = hf_cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    (folder / "snapshots" / "0123abcd").mkdir(parents=True)
    torch.manual_seed(321)
    state = timm.create_model("resnet18").state_dict()
    save_file(state, folder / "snapshots" / "0123abcd" / "model.safetensors")
    return state


@needs_timm
@pytest.mark.parametrize(
    "name, options",
    [
        ("timm:resnet18", {"pretrained": True}),
        ("timm:resnet18", {"pretrained": "a1_in1k"}),
        ("timm:resnet18.a1_in1k", {"pretrained": True}),
    ],
)
def test_pretrained_timm_weights_come_from_the_hugging_face_cache(
    name, options, hf_cache, no_downloads
):
    state = write_timm_weights(hf_cache)
    loaded = seeded(name, options, classes=1000).state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert canonical_options(name, options) == {"pretrained": "a1_in1k"}


@needs_timm
def test_timm_adapts_pretrained_weights_to_the_classes_and_channels(hf_cache, no_downloads):
    state = write_timm_weights(hf_cache)
    loaded = seeded("timm:resnet18", {"pretrained": True}, classes=10, channels=1).state_dict()
    assert loaded["fc.weight"].shape == (10, 512)
    # timm sums a 3-channel first conv into one channel
    assert torch.allclose(loaded["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    for key in state:
        if not key.startswith(("fc.", "conv1.")):
            assert torch.equal(loaded[key], state[key]), key


@needs_timm
def test_missing_timm_weights_name_the_path_and_the_fix(hf_cache, no_downloads):
    with pytest.raises(ConfigError) as err:
        check_model_options("timm:resnet18", {"pretrained": True})
    message = str(err.value)
    assert str(hf_cache / "models--timm--resnet18.a1_in1k" / "snapshots") in message
    assert "timm.create_model('resnet18.a1_in1k', pretrained=True)" in message
    with pytest.raises(ConfigError, match="must be true, false or one of its tags"):
        check_model_options("timm:resnet18", {"pretrained": "nope"})
    with pytest.raises(ConfigError, match="the name already has tag 'a1_in1k'"):
        check_model_options("timm:resnet18.a1_in1k", {"pretrained": "a2_in1k"})


# --- in a config --------------------------------------------------------------------------------


def plan_with_model(model: str, options: dict | None = None):
    """The demo plan with its hard-label protocol on `model` (and a real-hard recipe for it)."""
    import copy
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    from ddrank_steps.planning.builder import build_plan

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    validate(config, str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    protocol = config["protocols"]["digits-dsa"]
    protocol["model"] = model
    protocol["model_options"] = options or {}
    config["real_protocols"][f"digits-{model}"] = copy.deepcopy(
        config["real_protocols"]["digits-ConvNet-3"]
    )
    return build_plan(config)


def syn_run(plan) -> dict:
    score = next(s for (_, metric), s in plan.scores.items() if metric == "lrs_hard")
    return score["protocols"]["syn-any"]


@pytest.mark.parametrize("name", ["resnet18", "torchvision:resnet18", "mobilenet_v3_small"])
def test_the_planner_takes_the_references_names(name):
    run = syn_run(plan_with_model(name))
    assert run["model_options"] == {"pretrained": False}


def test_a_bad_pretrained_option_stops_the_plan(torch_home):
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa: .*not in the local cache"):
        plan_with_model("resnet18", {"pretrained": True})


def test_a_bare_name_and_its_prefixed_spelling_key_one_run():
    assert (
        syn_run(plan_with_model("resnet18"))["key"]
        == syn_run(plan_with_model("torchvision:resnet18"))["key"]
    )


# --- a pretrained teacher is used as it is ------------------------------------------------------


def test_a_pretrained_teacher_is_planned_without_training(torch_home, no_downloads):
    import copy
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    from ddrank_steps.planning.builder import build_plan

    write_torchvision_weights(torch_home)
    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    validate(config, str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    kd = config["protocols"]["digits-kd"]
    kd["teacher_model_names"] = [{"model": "resnet18", "model_options": {"pretrained": True}}]
    plan = build_plan(copy.deepcopy(config))
    spec = plan.scores[("kmeans", "lrs_soft")]["protocols"]["syn-any"]
    assert [t["source"] for t in spec["teachers"]] == ["pretrained"]
    assert plan.label_inputs("digits", "syn-kmeans", spec["key"], 0) == {"teachers": []}


def test_a_pretrained_teacher_loads_its_cached_weights(torch_home, no_downloads):
    from ddrank_steps.data.training_inputs import DatasetMeta
    from ddrank_steps.training.teachers import load_ensemble

    state = write_torchvision_weights(torch_home)
    spec = {"model": "resnet18", "model_options": {"pretrained": True}, "source": "pretrained"}

    def meta(classes: int) -> DatasetMeta:
        names = [str(c) for c in range(classes)]
        return DatasetMeta("imagenet", classes, 3, 32, 32, [0.5] * 3, [0.25] * 3, 1.0, names)

    ensemble = load_ensemble([spec], [], meta(1000), torch.device("cpu"))
    loaded = ensemble.state_dict()
    assert all(torch.equal(v, state[k.split(".", 2)[-1]]) for k, v in loaded.items())
    with pytest.raises(ConfigError, match="predicts 1000 classes, but dataset imagenet has 10"):
        load_ensemble([spec], [], meta(10), torch.device("cpu"))
