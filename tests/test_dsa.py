"""DSA ops against their formulas, seeding, modes, params and the augmentation registry."""

from __future__ import annotations

import pytest
import torch

from ddrank_steps.augment import (
    AUGMENTATIONS,
    DSA,
    available_augmentations,
    build_augmentation,
)
from ddrank_steps.augment import dsa as D
from ddrank_steps.errors import ConfigError

DC_PARAMS = {
    "ratio_scale": 1.2,
    "ratio_rotate": 15.0,
    "prob_flip": 0.5,
    "brightness": 1.0,
    "saturation": 2.0,
    "contrast": 0.5,
    "ratio_crop_pad": 0.125,
    "ratio_cutout": 0.5,
    "aug_mode": "M",
}
REF_PARAMS = {
    "scale": 1.2,
    "rotate": 15.0,
    "flip": 0.5,
    "brightness": 1.0,
    "saturation": 2.0,
    "contrast": 0.5,
    "crop": 0.125,
    "cutout": 0.5,
    "mode": "M",
}


def arange_images(n: int = 2, c: int = 3, h: int = 4, w: int = 5) -> torch.Tensor:
    return torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- ops against their formulas -------------------------------------------------------------


def test_flip_mirrors_width_of_masked_samples_only():
    x = arange_images()
    out = D.flip(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0, :, :, [4, 3, 2, 1, 0]])
    assert torch.equal(out[1], x[1])


def test_crop_translates_and_zero_fills():
    x = arange_images()
    out = D.crop(x, torch.tensor([1, 0]), torch.tensor([-2, 0]))
    expected = torch.zeros_like(x[0])
    # out[i, j] = x[i + 1, j - 2]: last row and first two columns are vacated.
    expected[:, 0:3, 2:5] = x[0, :, 1:4, 0:3]
    assert torch.equal(out[0], expected)
    assert torch.equal(out[1], x[1])


def test_crop_shift_beyond_image_gives_zeros():
    x = arange_images(n=1)
    assert torch.equal(D.crop(x, torch.tensor([4]), torch.tensor([0])), torch.zeros_like(x))


def test_colour_ops_match_formulas():
    x = torch.randn(3, 3, 6, 7, generator=gen(0))
    u = torch.tensor([0.1, 0.5, 0.9])
    uu = u.view(-1, 1, 1, 1)
    torch.testing.assert_close(D.brightness(x, u, 1.0), x + (uu - 0.5) * 1.0, atol=1e-6, rtol=0)
    m = x.mean(dim=1, keepdim=True)
    torch.testing.assert_close(D.saturation(x, u, 2.0), (x - m) * (uu * 2.0) + m, atol=1e-6, rtol=0)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(D.contrast(x, u, 0.5), (x - m) * (uu + 0.5) + m, atol=1e-6, rtol=0)


def test_identity_scale_and_zero_rotation():
    x = torch.randn(2, 3, 7, 9, generator=gen(1))
    ones = torch.ones(2)
    torch.testing.assert_close(D.scale(x, ones, ones), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(D.rotate(x, torch.zeros(2)), x, atol=1e-5, rtol=0)


def test_rotate_180_on_odd_square_is_point_reflection():
    # align_corners=True maps the centre pixel to itself, so 180 degrees is exact up to rounding.
    x = torch.randn(1, 1, 5, 5, generator=gen(2))
    torch.testing.assert_close(D.rotate(x, torch.tensor([180.0])), x.flip(2, 3), atol=1e-5, rtol=0)


def test_cutout_zeroes_expected_square_and_clips_at_border():
    x = torch.ones(2, 2, 8, 8)
    out = D.cutout(x, torch.tensor([4, 0]), torch.tensor([3, 7]), 4, 4)
    expected = torch.ones_like(x)
    expected[0, :, 2:6, 1:5] = 0  # rows 4-2 .. 4+1, cols 3-2 .. 3+1
    expected[1, :, 0:2, 5:8] = 0  # rows -2 .. 1 and cols 5 .. 8 clipped to the image
    assert torch.equal(out, expected)


def test_cutout_odd_size_is_centred():
    out = D.cutout(torch.ones(1, 1, 5, 5), torch.tensor([2]), torch.tensor([2]), 3, 3)
    expected = torch.ones(1, 1, 5, 5)
    expected[0, 0, 1:4, 1:4] = 0
    assert torch.equal(out, expected)


def test_sizes_follow_reference_rounding():
    assert D.axis_shift(32, 0.125) == 4
    assert D.cutout_size(32, 0.5) == 16
    assert D.axis_shift(8, 0.125) == 1
    assert D.cutout_size(8, 0.5) == 4


# --- seeding and modes ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["S", "M"])
def test_same_seed_same_output_different_seed_differs(mode):
    x = torch.randn(8, 3, 32, 32, generator=gen(3))
    dsa = DSA({"mode": mode})
    a, mix = dsa(x, gen(10))
    b, _ = dsa(x, gen(10))
    assert mix is None
    assert torch.equal(a, b)
    # Different seeds may pick the same op in mode S, but the per-sample draws still differ.
    assert not torch.equal(a, dsa(x, gen(11))[0])


def test_global_rng_is_not_used():
    x = torch.randn(4, 3, 16, 16, generator=gen(4))
    dsa = DSA({"mode": "M"})
    torch.manual_seed(0)
    a, _ = dsa(x, gen(5))
    torch.manual_seed(123)
    b, _ = dsa(x, gen(5))
    assert torch.equal(a, b)


def _record_ops(dsa: DSA, monkeypatch) -> list[str]:
    calls: list[str] = []
    for name, op in dict(dsa.random_ops).items():

        def recorded(x, g, name=name, op=op):
            calls.append(name)
            return op(x, g)

        monkeypatch.setitem(dsa.random_ops, name, recorded)
    return calls


def test_mode_s_applies_exactly_one_op_and_covers_all(monkeypatch):
    dsa = DSA({"mode": "S"})
    calls = _record_ops(dsa, monkeypatch)
    x = torch.randn(2, 3, 8, 8)
    g = gen(6)
    seen = set()
    for _ in range(60):
        before = len(calls)
        dsa(x, g)
        assert len(calls) == before + 1
        seen.add(calls[-1])
    assert seen == set(D.OP_NAMES)


def test_mode_m_applies_all_ops_in_order(monkeypatch):
    dsa = DSA({"mode": "M"})
    calls = _record_ops(dsa, monkeypatch)
    dsa(torch.randn(2, 3, 8, 8), gen(7))
    assert calls == ["scale", "rotate", "flip", "color", "crop", "cutout"]


@pytest.mark.parametrize("shape", [(4, 1, 8, 8), (4, 3, 32, 32), (3, 2, 6, 10)])
@pytest.mark.parametrize("mode", ["S", "M"])
def test_shapes_and_dtype_preserved(shape, mode):
    x = torch.randn(*shape, generator=gen(8))
    for seed in range(6):
        out, _ = DSA({"mode": mode})(x, gen(seed))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.isfinite(out).all()


def test_gradients_flow_through_all_ops():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    out, _ = DSA({"mode": "M"})(x, gen(9))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_wrong_generator_device_or_shape_rejected():
    dsa = DSA()
    with pytest.raises(ValueError, match="shape"):
        dsa(torch.randn(3, 8, 8), gen(0))
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            dsa(torch.randn(1, 3, 8, 8, device="cuda"), gen(0))


# --- params ---------------------------------------------------------------------------------


def test_defaults_are_reference_demo_values():
    p = DSA().params
    assert (p.scale, p.rotate, p.flip, p.brightness) == (1.2, 15.0, 0.5, 1.0)
    assert (p.saturation, p.contrast, p.crop, p.cutout, p.mode) == (2.0, 0.5, 0.125, 0.5, "S")
    assert DSA(None).params == DSA({}).params


def test_both_spellings_accepted_and_equal():
    dc, ref = DSA(DC_PARAMS), DSA(REF_PARAMS)
    assert dc.params == ref.params
    x = torch.randn(4, 3, 16, 16, generator=gen(10))
    assert torch.equal(dc(x, gen(1))[0], ref(x, gen(1))[0])
    # The same value under both spellings is not a conflict.
    assert DSA({"scale": 1.5, "ratio_scale": 1.5}).params.scale == 1.5


def test_unknown_key_names_key_and_lists_valid_keys():
    with pytest.raises(ConfigError, match="ratio_noise") as err:
        DSA({"ratio_noise": 0.05})
    assert "prob_flip" in str(err.value) and "cutout" in str(err.value)


def test_conflicting_spellings_rejected():
    with pytest.raises(ConfigError, match=r"prob_flip.*flip|flip.*prob_flip"):
        DSA({"flip": 0.5, "prob_flip": 0.3})
    with pytest.raises(ConfigError, match="aug_mode"):
        DSA({"mode": "S", "aug_mode": "M"})


@pytest.mark.parametrize(
    "key,value",
    [
        ("prob_flip", 1.5),
        ("flip", -0.1),
        ("scale", 0.9),
        ("ratio_rotate", -1.0),
        ("crop", "0.1"),
        ("cutout", float("nan")),
        ("brightness", None),
        ("contrast", True),
        ("mode", "X"),
        ("aug_mode", "s_m"),
    ],
)
def test_bad_values_rejected_naming_key(key, value):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        DSA({key: value})


def test_non_mapping_params_rejected():
    with pytest.raises(ConfigError):
        DSA([("scale", 1.2)])


# --- registry -------------------------------------------------------------------------------


def test_registry():
    assert "dsa" in AUGMENTATIONS
    assert "dsa" in available_augmentations()
    assert build_augmentation(None, None) is None
    assert build_augmentation("none", {"scale": 2}) is None
    aug = build_augmentation("dsa", {"ratio_scale": 1.3})
    assert isinstance(aug, DSA) and aug.params.scale == 1.3
    assert isinstance(build_augmentation("dsa", None), DSA)


def test_unknown_augmentation_lists_valid_names():
    with pytest.raises(ConfigError, match="dsa") as err:
        build_augmentation("autoaugment", {})
    assert "autoaugment" in str(err.value)


def test_crop_and_cutout_match_reference_index_construction():
    # The reference reads crops from a 1-px zero-padded copy with clamped indices, and zeroes
    # cutout boxes through clamped index grids; both must equal the masked versions here.
    n, c, h, w = 6, 2, 7, 11
    x = torch.randn(n, c, h, w, generator=gen(11))
    g = gen(12)
    th = torch.randint(-3, 4, (n,), generator=g)
    tw = torch.randint(-4, 5, (n,), generator=g)
    b, i, j = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    i = (i + th.view(-1, 1, 1) + 1).clamp(0, h + 1)
    j = (j + tw.view(-1, 1, 1) + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    assert torch.equal(D.crop(x, th, tw), padded[b, i, j].permute(0, 3, 1, 2))

    sh, sw = 4, 5
    ch = torch.randint(0, h + (1 - sh % 2), (n,), generator=g)
    cw = torch.randint(0, w + (1 - sw % 2), (n,), generator=g)
    b, i, j = torch.meshgrid(torch.arange(n), torch.arange(sh), torch.arange(sw), indexing="ij")
    i = (i + ch.view(-1, 1, 1) - sh // 2).clamp(0, h - 1)
    j = (j + cw.view(-1, 1, 1) - sw // 2).clamp(0, w - 1)
    keep = torch.ones(n, h, w)
    keep[b, i, j] = 0
    assert torch.equal(D.cutout(x, ch, cw, sh, sw), x * keep.unsqueeze(1))
