"""DD-Ranking's defaults are data (`ddrank_steps/api/reference_defaults.yaml`), read by the
translator and the Python API alike, and every reference key has a handler in the key
table (`reference_keys.KEYS`) or an explicit accepted-and-ignored entry, so a key added
to the defaults cannot be dropped silently."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from ddrank_steps.api import evaluators
from ddrank_steps.api.reference_keys import KEYS, METRICS, WEIGHTS
from ddrank_steps.api.translate import (
    CLASSES,
    DEFAULTS,
    IGNORED,
    Context,
    settings_with_defaults,
    translate,
)

FILE = Path(evaluators.__file__).with_name("reference_defaults.yaml")
EVALUATORS = [
    evaluators.LabelRobustScoreHard,
    evaluators.LabelRobustScoreSoft,
    evaluators.AugmentationRobustScore,
    evaluators.GeneralEvaluator,
]


def file_defaults() -> dict:
    """The YAML file's defaults as written, read here without the package's loader (its
    `tuples` keys are tuples in ddranking: Config.get returns im_size as one)."""
    data = yaml.safe_load(FILE.read_text())
    return {
        metric: {k: tuple(v) if k in data["tuples"] else v for k, v in keys.items()}
        for metric, keys in data["defaults"].items()
    }


def file_data() -> dict:
    return yaml.safe_load(FILE.read_text())


@pytest.mark.parametrize("cls", EVALUATORS, ids=lambda c: c.__name__)
def test_each_evaluator_uses_the_files_defaults(cls, tmp_path):
    defaults = file_defaults()[cls.METRIC]
    assert CLASSES[cls.METRIC] == cls.__name__ == file_data()["classes"][cls.METRIC]
    evaluator = cls(work_dir=tmp_path)  # no key given: every setting is the class's default
    assert evaluator.settings == defaults
    assert list(evaluator.settings) == list(defaults)
    assert isinstance(evaluator.settings["im_size"], tuple)


@pytest.mark.parametrize("cls", EVALUATORS, ids=lambda c: c.__name__)
def test_compute_metrics_signature_defaults_are_the_files(cls):
    weights = file_data()["compute_metrics"][cls.METRIC]
    signature = inspect.signature(cls.compute_metrics).parameters
    for keyword, default in weights.items():
        assert signature[keyword].default == default, keyword
    assert not set(signature) & (set(WEIGHTS) - set(weights))  # no other weight keyword


@pytest.mark.parametrize("metric", sorted(CLASSES))
def test_the_translator_fills_in_the_files_defaults(metric):
    """The reference's defaults (nothing given) land in ddrank's config as the file says:
    the training recipe, the rounds and the score's weight."""
    defaults = file_defaults()[metric]
    settings, notes = settings_with_defaults({}, metric, "config", from_file=False)
    assert settings == defaults and notes == []
    config = translate(settings, Context(metric, "m", "set.pt", "config", set())).config
    protocol = config["protocols"][metric]
    assert protocol["model"] == defaults["model_name"]
    assert protocol["optimizer"] == defaults["optimizer"]
    assert protocol["weight_decay"] == defaults["weight_decay"]
    assert protocol["momentum"] == defaults["momentum"]
    assert protocol["epochs"] == defaults["num_epochs"]
    assert protocol["batch_size"] == defaults.get("batch_size", defaults.get("syn_batch_size"))
    assert config["num_eval"] == defaults["num_eval"]
    assert list(config["datasets"]) == [defaults["dataset"]]
    assert config["methods"]["m"]["ipc"] == defaults["ipc"]
    metric_settings = config["methods"]["m"]["metrics"][metric]
    for keyword, default in file_data()["compute_metrics"][metric].items():
        assert metric_settings[WEIGHTS[keyword]] == default


def test_every_reference_key_has_a_handler_or_is_ignored_explicitly():
    data = file_data()
    reference_keys = set().union(*data["defaults"].values())
    reference_keys |= set().union(*data["compute_metrics"].values())
    table = [key for entry in KEYS for key in entry.keys]
    assert len(table) == len(set(table)), "a key with two handlers"
    assert reference_keys - set(table) == set(), "keys no handler reads"
    assert set(table) - reference_keys == set(), "handlers of keys no class reads"
    ignored = {key for entry in KEYS if entry.write is None for key in entry.keys}
    assert ignored == set(IGNORED) == set(data["ignored"])


def test_the_metric_table_covers_every_class_and_reads_only_its_keys():
    assert set(METRICS) == set(CLASSES) == set(DEFAULTS)
    for metric, spec in METRICS.items():
        # a class decides soft or hard itself, or by the label_type it reads
        assert spec.labels in ("hard", "soft", "label_type")
        assert (spec.labels == "label_type") == ("label_type" in DEFAULTS[metric])
        # each metric setting is a weight or a key the class reads
        weights = {WEIGHTS[k] for k in file_data()["compute_metrics"][metric]}
        assert set(spec.settings) <= weights | set(DEFAULTS[metric])
