"""One reader for result files: a damaged one is an error naming it and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddrank_steps.data.training_inputs import DatasetMeta, load_set, load_split
from ddrank_steps.errors import InputError
from ddrank_steps.runtime.checked_read import load_torch, read_cached_json


class NotPlainData:
    """A pickled object: weights_only=True refuses it (it could run code on load)."""


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_truncated_json_names_the_file_and_the_rebuild(tmp_path):
    path = tmp_path / "results" / "run.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"selected": {"acc": 0.5}})[:10])
    with pytest.raises(InputError) as info:
        read_cached_json(path)
    message = str(info.value)
    assert str(path) in message and "JSONDecodeError" in message
    assert f"snakemake --forcerun {path}" in message


def test_empty_and_truncated_torch_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.pt"
    torch.save({"images": torch.zeros(50, 1, 8, 8)}, cut)
    truncated(cut)
    for path in (empty, cut):
        for mmap in (False, True):
            with pytest.raises(InputError, match=rf"{path}.*damaged.*forcerun {path}"):
                load_torch(path, mmap=mmap)
    with pytest.raises(InputError, match=rf"{cut}.*damaged"):
        load_set(cut)


def test_a_cached_dataset_and_meta_that_are_damaged_name_themselves(tmp_path):
    data, meta = tmp_path / "data.pt", tmp_path / "meta.json"
    torch.save({"test": {"images": torch.zeros(4, 1, 2, 2), "labels": torch.zeros(4)}}, data)
    truncated(data)
    meta.write_text('{"name": "x", "num_cl')
    with pytest.raises(InputError, match=rf"{meta}: field 'file': is damaged"):
        DatasetMeta.load(meta)
    good = DatasetMeta("x", 2, 1, 2, 2, [0.0], [1.0], 255.0, ["a", "b"])
    with pytest.raises(InputError, match=rf"{data}: field 'file': cannot be read"):
        load_split(data, "test", good)


def test_objects_that_could_run_code_are_refused_with_our_advice(tmp_path):
    path = tmp_path / "set.pt"
    torch.save({"images": torch.zeros(2), "extra": NotPlainData()}, path)
    with pytest.raises(InputError) as info:
        load_torch(path)
    message = str(info.value)
    assert str(path) in message and "NotPlainData" in message
    assert "weights_only=False" not in message  # PyTorch's advice would let it run code
    assert "save plain tensors" in message


def test_the_score_stage_reports_a_damaged_run_in_one_line(tmp_path):
    run = tmp_path / "seed0.json"
    run.write_text('{"selected": {"acc": 0.')
    spec = {
        "method": "m",
        "metric": "accuracy",
        "dataset": "d",
        "ipc": 1,
        "settings": {},
        "protocol_name": "p",
        "protocols": {},
        "rounds": [{"seed": 0, "terms": {"syn-any": str(run)}}],
    }
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "ddrank_steps.stages.score"),
            *("--spec", json.dumps(spec), "--out", str(tmp_path / "score.json")),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{run}: field 'file': is damaged" in proc.stderr
    assert f"snakemake --forcerun {run}" in proc.stderr


# --- a run file that parses but is not whole --------------------------------------------


def good_run() -> dict:
    curve = [
        {"epoch": 1, "test": 0.4, "train_loss": 1.2},
        {"epoch": 2, "test": None, "train_loss": None},
    ]
    return {
        "selected": {"acc": 0.5, "lr": 0.01, "epoch": 1},
        "runs": [{"lr": 0.01, "curve": curve}],
        "data": {"mean": [0.5], "std": [0.2]},
    }


def test_a_run_file_of_the_wrong_shape_names_the_field(tmp_path):
    from ddrank_steps.reporting.run_records import read_run

    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(good_run()))
    assert read_run(str(path))["selected"]["acc"] == 0.5
    for change, where in (
        (lambda r: r.pop("selected"), "selected"),
        (lambda r: r["selected"].pop("acc"), "selected.acc"),
        (lambda r: r["selected"].update(acc="0.5"), "selected.acc"),
        (lambda r: r["selected"].update(acc=57.0), "selected.acc"),  # percent, not a fraction
        (lambda r: r["selected"].update(lr=None), "selected.lr"),
        (lambda r: r.update(runs={}), "runs"),
        (lambda r: r["runs"][0].update(curve=[1]), "runs[0].curve[0]"),
        (lambda r: r["runs"][0]["curve"][0].update(test="x"), "runs[0].curve[0].test"),
        (lambda r: r.update(data=[1]), "data"),
    ):
        run = good_run()
        change(run)
        path.write_text(json.dumps(run))
        with pytest.raises(InputError) as info:
            read_run(str(path))
        assert info.value.field == where and info.value.path == str(path)
        assert f"--forcerun {path}" in info.value.fix
    given = {"selected": {"acc": 0.8, "lr": None, "epoch": None}, "given": {"source": "table"}}
    path.write_text(json.dumps(given))
    assert read_run(str(path))["given"]["source"] == "table"


# --- datasets, sets and soft labels that load but are not whole --------------------------

META = {
    "name": "x",
    "num_classes": 2,
    "channels": 1,
    "height": 2,
    "width": 2,
    "mean": [0.5],
    "std": [0.2],
    "max_value": 255.0,
    "classes": ["a", "b"],
}


def test_a_dataset_meta_of_the_wrong_shape_names_the_field(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(META))
    assert DatasetMeta.load(path).num_classes == 2
    for change, where in (
        (lambda m: m.pop("num_classes"), "num_classes"),
        (lambda m: m.update(height="2"), "height"),
        (lambda m: m.update(std=[]), "std"),
        (lambda m: m.update(mean=[None]), "mean[0]"),
        (lambda m: m.update(classes=["a"]), "classes"),
    ):
        meta = dict(META)
        change(meta)
        path.write_text(json.dumps(meta))
        with pytest.raises(InputError) as info:
            DatasetMeta.load(path)
        assert info.value.field == where and f"--forcerun {path}" in info.value.fix


def test_a_prepared_dataset_of_the_wrong_shape_names_the_split(tmp_path):
    path = tmp_path / "data.pt"
    meta = DatasetMeta(**META)
    good = {"images": torch.zeros(4, 1, 2, 2, dtype=torch.uint8), "labels": torch.zeros(4)}
    for blob, where in (
        ({"train": good}, "test"),
        ({"train": good, "test": {"images": torch.zeros(4, 1, 2, 2)}}, "test.labels"),
        ({"train": good, "test": {**good, "images": torch.zeros(4, 2, 2)}}, "test.images"),
        ({"train": good, "test": {**good, "labels": torch.zeros(3)}}, "test.labels"),
        ([good], "file"),
    ):
        torch.save(blob, path)
        with pytest.raises(InputError) as info:
            load_split(path, "test", meta)
        assert info.value.field == where and info.value.path == str(path)
    torch.save({"train": good, "test": good}, path)
    images, labels = load_split(path, "test", meta)
    assert (
        images.shape == (4, 1, 2, 2)
        and labels.shape == (4,)
        and load_split(path, "val", meta) is None
    )


def test_a_set_file_of_the_wrong_shape_or_with_nan_names_the_field(tmp_path):
    path = tmp_path / "set.pt"
    images, labels = torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    nan = images.clone()
    nan[0, 0, 0, 0] = float("nan")
    for blob, where in (
        ({"labels": labels}, "images"),
        ({"images": nan, "labels": labels}, "images"),
        ({"images": images, "labels": labels[:2]}, "labels"),
        ({"images": images, "labels": labels, "soft_labels": torch.zeros(3)}, "soft_labels"),
        ({"images": images, "labels": labels, "soft_labels": torch.zeros(2, 4)}, "soft_labels"),
    ):
        torch.save(blob, path)
        with pytest.raises(InputError) as info:
            load_set(path)
        assert info.value.field == where and f"--forcerun {path}" in info.value.fix


def test_teacher_soft_labels_of_the_wrong_shape_name_the_file_and_the_rebuild(tmp_path):
    from ddrank_steps.training.label_targets import soft_targets

    path = tmp_path / "soft.pt"
    protocol = {"label_source": "teacher_logits"}
    for blob, problem in (
        ({"info": {}}, "missing"),
        ({"soft_labels": torch.full((3, 2), float("inf"))}, "NaN or infinite"),
        ({"soft_labels": torch.zeros(3, 5)}, "has shape (3, 5), expected (3, 2)"),
    ):
        torch.save(blob, path)
        with pytest.raises(InputError) as info:
            soft_targets(protocol, None, 3, 2, "set.pt", str(path))
        assert info.value.path == str(path) and info.value.field == "soft_labels"
        assert problem in info.value.problem and f"--forcerun {path}" in info.value.fix
