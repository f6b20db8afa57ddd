"""syn_set: reading a method's distilled set, and every way a user's file can be wrong.

Each error must name the file, the field inside it and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import digits_meta

from ddrank_steps.data.syn_import import import_set, read_images, resolve_labels, resolve_lr
from ddrank_steps.errors import InputError

REPO = Path(__file__).resolve().parents[1]
META = digits_meta([0.3], [0.4])
IPC = 2
N = 10 * IPC
SORTED = torch.arange(10).repeat_interleave(IPC)


def save(path: Path, obj) -> str:
    torch.save(obj, path)
    return str(path)


def images(n: int = N) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def shuffled_labels() -> torch.Tensor:
    # IPC of each class, not class-sorted
    return SORTED[torch.randperm(N, generator=torch.Generator().manual_seed(1))]


def raises_input_error(path, field: str, expected: str):
    """pytest.raises for an InputError whose message names path, field and expectation."""
    return pytest.raises(
        InputError, match=rf"^{re.escape(str(path))}: field '{field}': .*{re.escape(expected)}"
    )


# --- accepted inputs -------------------------------------------------------------------------


def test_float_tensor_is_taken_as_already_normalised(tmp_path):
    x = images()
    got, labels, lr, _ = read_images(save(tmp_path / "x.pt", x), META)
    assert torch.equal(got, x)
    assert labels is None and lr is None


def test_float64_tensor_is_stored_as_float32(tmp_path):
    got, _, _, _ = read_images(save(tmp_path / "x.pt", images().double()), META)
    assert got.dtype == torch.float32


def test_uint8_tensor_is_normalised_from_0_255_pixels(tmp_path):
    raw = torch.randint(0, 256, (N, 1, 8, 8), dtype=torch.uint8)
    got, _, _, _ = read_images(save(tmp_path / "x.pt", raw), META)
    # (pixel/255 − mean)/std, e.g. 255 → (1 − 0.3)/0.4 = 1.75
    assert torch.allclose(got, (raw.float() / 255.0 - 0.3) / 0.4)


def test_dict_with_images_labels_and_lr_is_unpacked(tmp_path):
    x, y = images(), shuffled_labels()
    path = save(tmp_path / "x.pt", {"images": x, "labels": y, "lr": 0.02})
    got, labels, lr, _ = read_images(path, META)
    assert torch.equal(got, x)
    assert torch.equal(labels, y)
    assert lr == 0.02


def test_import_set_without_labels_assumes_class_sorted_labels(tmp_path):
    blob = import_set("m", save(tmp_path / "x.pt", images()), None, None, IPC, META)
    assert torch.equal(blob["labels"], SORTED)
    assert blob["info"]["label_kind"] == "class-sorted"
    assert "soft_labels" not in blob and "lr" not in blob


def test_import_set_from_dict_keeps_its_labels_and_lr(tmp_path):
    y = shuffled_labels()
    path = save(tmp_path / "x.pt", {"images": images(), "labels": y, "lr": 0.02})
    blob = import_set("m", path, None, None, IPC, META)
    assert torch.equal(blob["labels"], y)
    assert blob["lr"] == 0.02
    assert blob["info"]["label_kind"] == "hard"


def test_import_set_reads_hard_labels_from_their_own_file(tmp_path):
    y = shuffled_labels()
    labels_path = save(tmp_path / "y.pt", y)
    blob = import_set("m", save(tmp_path / "x.pt", images()), labels_path, None, IPC, META)
    assert torch.equal(blob["labels"], y)
    assert blob["labels"].dtype == torch.int64
    assert blob["info"]["label_kind"] == "hard"


def test_import_set_soft_labels_alone_keep_class_sorted_hard_labels(tmp_path):
    # As the reference: soft labels never decide the hard ones (their argmax need not be
    # the class an image was distilled for)
    soft = torch.full((N, 10), -1.0)
    soft[torch.arange(N), shuffled_labels()] = 3.0
    labels_path = save(tmp_path / "y.pt", soft)
    blob = import_set("m", save(tmp_path / "x.pt", images()), labels_path, None, IPC, META)
    assert torch.equal(blob["labels"], SORTED)
    assert torch.equal(blob["soft_labels"], soft)
    assert blob["info"]["label_kind"] == "soft"


def test_soft_labels_whose_argmax_is_unbalanced_are_accepted(tmp_path):
    # SRe2L-style: the teacher calls most images class 0; the set still has ipc per class
    soft = torch.randn(N, 10, generator=torch.Generator().manual_seed(2))
    soft[:, 0] += 10.0
    inline = save(tmp_path / "x.pt", {"images": images(), "labels": soft})
    blob = import_set("m", inline, None, None, IPC, META)
    assert torch.equal(blob["labels"], SORTED) and torch.equal(blob["soft_labels"], soft)


def test_a_dict_may_carry_hard_labels_and_soft_labels(tmp_path):
    soft = torch.randn(N, 10, generator=torch.Generator().manual_seed(3))
    inline = {"images": images(), "labels": shuffled_labels(), "soft_labels": soft}
    blob = import_set("m", save(tmp_path / "x.pt", inline), None, None, IPC, META)
    assert torch.equal(blob["labels"], shuffled_labels())
    assert torch.equal(blob["soft_labels"], soft)


def test_soft_labels_alone_need_num_classes_times_ipc_images(tmp_path):
    soft = torch.randn(N + 1, 10)
    inline = save(tmp_path / "x.pt", {"images": images(N + 1), "labels": soft})
    with raises_input_error(inline, "labels", "give hard labels in `labels`"):
        import_set("m", inline, None, None, IPC, META)


def test_resolve_labels_accepts_integral_float_hard_labels():
    hard, soft = resolve_labels(SORTED.float(), N, IPC, META, "y.pt")
    assert torch.equal(hard, SORTED) and soft is None


def test_import_set_separate_labels_file_overrides_inline_labels(tmp_path):
    y = shuffled_labels()
    path = save(tmp_path / "x.pt", {"images": images(), "labels": SORTED})
    blob = import_set("m", path, save(tmp_path / "y.pt", y), None, IPC, META)
    assert torch.equal(blob["labels"], y)


def test_resolve_lr_accepts_a_number():
    assert resolve_lr(0.01, "x.pt") == 0.01


def test_resolve_lr_reads_a_txt_file(tmp_path):
    path = tmp_path / "lr.txt"
    path.write_text("0.005\n")
    assert resolve_lr(str(path), "x.pt") == 0.005


def test_resolve_lr_reads_a_pt_file(tmp_path):
    assert resolve_lr(save(tmp_path / "lr.pt", torch.tensor(0.03)), "x.pt") == pytest.approx(0.03)


def test_resolve_lr_of_none_is_none():
    assert resolve_lr(None, "x.pt") is None


def test_import_set_explicit_lr_overrides_the_inline_lr(tmp_path):
    path = save(tmp_path / "x.pt", {"images": images(), "lr": 0.02})
    assert import_set("m", path, None, 0.5, IPC, META)["lr"] == 0.5


# --- errors ----------------------------------------------------------------------------------


def test_wrong_image_shape_names_file_field_and_expected_shape(tmp_path):
    path = save(tmp_path / "x.pt", torch.randn(N, 3, 8, 8))
    with raises_input_error(path, "images", "expected (N, 1, 8, 8)"):
        read_images(path, META)


def test_three_dimensional_images_are_rejected(tmp_path):
    path = save(tmp_path / "x.pt", torch.randn(N, 8, 8))
    with raises_input_error(path, "images", "expected (N, 1, 8, 8)"):
        read_images(path, META)


def test_label_count_different_from_image_count_is_rejected(tmp_path):
    labels_path = save(tmp_path / "y.pt", SORTED[:-1])
    with raises_input_error(labels_path, "labels", "19 labels for 20 images"):
        import_set("m", save(tmp_path / "x.pt", images()), labels_path, None, IPC, META)


def test_absent_labels_with_image_count_not_classes_times_ipc_is_rejected(tmp_path):
    path = save(tmp_path / "x.pt", images(21))
    with raises_input_error(path, "labels", "num_classes x ipc = 10 x 2 = 20"):
        import_set("m", path, None, None, IPC, META)


def test_nan_pixel_is_rejected(tmp_path):
    x = images()
    x[3, 0, 2, 2] = float("nan")
    path = save(tmp_path / "x.pt", x)
    with raises_input_error(path, "images", "1 NaN or infinite pixel values"):
        read_images(path, META)


def test_soft_labels_of_wrong_width_are_rejected(tmp_path):
    labels_path = save(tmp_path / "y.pt", torch.rand(N, 9))
    with raises_input_error(labels_path, "labels", "expected (N, 10)"):
        import_set("m", save(tmp_path / "x.pt", images()), labels_path, None, IPC, META)


def test_labels_out_of_class_range_are_rejected(tmp_path):
    y = SORTED.clone()
    y[-1] = 10
    labels_path = save(tmp_path / "y.pt", y)
    with raises_input_error(labels_path, "labels", "class ids in [0, 9]"):
        import_set("m", save(tmp_path / "x.pt", images()), labels_path, None, IPC, META)


def test_fractional_hard_labels_are_rejected():
    with raises_input_error("y.pt", "labels", "hard (N,) ints or soft (N, K)"):
        resolve_labels(SORTED.float() + 0.5, N, IPC, META, "y.pt")


def test_images_per_class_different_from_ipc_are_rejected(tmp_path):
    y = SORTED.clone()
    y[1] = 1  # class 0: 1 image, class 1: 3 images
    labels_path = save(tmp_path / "y.pt", y)
    with raises_input_error(labels_path, "labels", "differ from ipc=2 (class 0: 1, class 1: 3)"):
        import_set("m", save(tmp_path / "x.pt", images()), labels_path, None, IPC, META)


def test_negative_lr_is_rejected_naming_the_set_file():
    with raises_input_error("x.pt", "lr", "-0.1 is not a positive finite number"):
        resolve_lr(-0.1, "x.pt")


def test_non_numeric_lr_text_file_is_rejected_naming_the_lr_file(tmp_path):
    path = tmp_path / "lr.txt"
    path.write_text("fast\n")
    with raises_input_error(path, "lr", "'fast' is not a number"):
        resolve_lr(str(path), "x.pt")


def test_missing_lr_text_file_is_rejected(tmp_path):
    path = tmp_path / "lr.txt"
    with raises_input_error(path, "lr", "file not found"):
        resolve_lr(str(path), "x.pt")


def test_lr_pt_file_with_many_values_is_rejected(tmp_path):
    path = save(tmp_path / "lr.pt", torch.tensor([0.1, 0.2]))
    with raises_input_error(path, "lr", "one number"):
        resolve_lr(path, "x.pt")


def test_missing_images_file_is_rejected(tmp_path):
    path = tmp_path / "absent.pt"
    with raises_input_error(path, "images", "file not found"):
        read_images(str(path), META)


def test_missing_labels_file_is_rejected(tmp_path):
    labels_path = tmp_path / "absent.pt"
    with raises_input_error(labels_path, "labels", "file not found"):
        import_set("m", save(tmp_path / "x.pt", images()), str(labels_path), None, IPC, META)


def test_non_tensor_content_is_rejected(tmp_path):
    path = save(tmp_path / "x.pt", [1, 2, 3])
    with raises_input_error(path, "images", "is a list, not a tensor"):
        read_images(path, META)


def test_dict_without_images_key_is_rejected(tmp_path):
    path = save(tmp_path / "x.pt", {"data": images()})
    with raises_input_error(path, "images", "no 'images'"):
        read_images(path, META)


def test_file_that_torch_cannot_read_is_rejected(tmp_path):
    path = tmp_path / "x.pt"
    path.write_text("not a torch file")
    with raises_input_error(path, "images", "cannot be read by torch.load"):
        read_images(str(path), META)


def test_integer_non_uint8_images_are_rejected(tmp_path):
    path = save(tmp_path / "x.pt", torch.zeros(N, 1, 8, 8, dtype=torch.int64))
    with raises_input_error(path, "images", "use float32 or uint8 pixels"):
        read_images(path, META)


def test_raw_0_255_float_pixels_are_rejected(tmp_path):
    path = save(tmp_path / "x.pt", torch.rand(N, 1, 8, 8) * 255.0)
    with raises_input_error(path, "images", "looks like raw 0-255 pixels"):
        read_images(path, META)


def test_empty_image_tensor_is_rejected_with_an_input_error(tmp_path):
    path = save(tmp_path / "x.pt", torch.zeros(0, 1, 8, 8))
    with raises_input_error(path, "images", ""):
        read_images(path, META)


def test_scalar_labels_tensor_is_rejected_with_an_input_error():
    with raises_input_error("y.pt", "labels", ""):
        resolve_labels(torch.tensor(3), N, IPC, META, "y.pt")


# --- the command line --------------------------------------------------------------------------


def test_cli_on_a_bad_file_exits_2_with_one_line_and_no_traceback(tmp_path):
    meta_path = tmp_path / "meta.json"
    meta_path.write_text(json.dumps(dataclasses.asdict(META)))
    bad = save(tmp_path / "bad.pt", torch.randn(N, 3, 8, 8))
    proc = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "ddrank_steps.stages.syn_set",
                "--method",
                "m",
                "--images",
                bad,
            ),
            *("--ipc", str(IPC), "--meta", str(meta_path), "--out", str(tmp_path / "out.pt")),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "field 'images'" in line]
    assert len(lines) == 1
    assert bad in lines[0] and "expected (N, 1, 8, 8)" in lines[0]
    assert not (tmp_path / "out.pt").exists()
