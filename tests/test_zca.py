"""Dataset ZCA: kornia's formula, whitening of the fit data, serialisation, and the check
that a syn set is in ZCA space, both ways."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from sklearn.datasets import load_digits

from ddrank_steps.data.zca import (
    ZCA,
    fit_zca,
    looks_whitened,
    neighbour_correlation,
    warn_if_not_whitened,
    whitening_report,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def covariance(x: torch.Tensor) -> torch.Tensor:
    return torch.cov(x.reshape(len(x), -1).double().T)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1)
    return (x - x.mean()) / x.std(), torch.tensor(data.target)


@pytest.fixture(scope="module")
def digits_zca(digits) -> ZCA:
    return fit_zca(digits[0])


def smooth_images(n: int, classes: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Natural-image-like 3-channel images: Gaussian fields with a 1/f amplitude spectrum, a
    smooth pattern per class and a colour offset per image, normalised per channel."""
    g = gen(seed)
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.rfftfreq(size).view(1, -1)
    amplitude = 1.0 / (fx**2 + fy**2).sqrt().clamp_min(1.0 / size)

    def field(count, channels):
        re = torch.randn(count, channels, size, size // 2 + 1, generator=g)
        im = torch.randn(count, channels, size, size // 2 + 1, generator=g)
        return torch.fft.irfft2(torch.complex(re, im) * amplitude, s=(size, size))

    labels = torch.randint(0, classes, (n,), generator=g)
    x = field(n, 1) + 0.3 * field(n, 3) + 0.8 * field(classes, 3)[labels]
    x = x + 0.5 * torch.randn(n, 3, 1, 1, generator=g)
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    return x.float(), labels


# --- the formula ------------------------------------------------------------------------------


def test_transform_is_kornias_svd_formula(digits):
    x = digits[0][:500]
    zca = fit_zca(x, eps=0.1)
    flat = x.reshape(len(x), -1).double()
    mean = flat.mean(0)
    cov = (flat - mean).T @ (flat - mean) / (len(x) - 1)  # unbiased, as kornia
    u, s, _ = torch.linalg.svd(cov)
    expected = u @ torch.diag((s + 0.1).rsqrt()) @ u.T
    assert torch.allclose(zca.mean.double(), mean, atol=1e-6)
    assert torch.allclose(zca.transform.double(), expected, atol=1e-5)
    assert torch.allclose(
        zca.apply(x).reshape(len(x), -1).double(), (flat - mean) @ expected, atol=1e-4
    )


def test_whitens_the_fit_data_to_identity_covariance():
    # Every variance far above eps: the whitened covariance is the identity up to eps / S.
    g = gen(0)
    mixing = torch.linalg.qr(torch.randn(48, 48, generator=g, dtype=torch.float64))[0]
    scales = torch.linspace(5.0, 20.0, 48, dtype=torch.float64)
    x = (torch.randn(3000, 48, generator=g, dtype=torch.float64) * scales) @ mixing.T + 3.0
    x = x.float().view(3000, 3, 4, 4)
    white = fit_zca(x).apply(x)
    assert white.mean(0).abs().max() < 1e-4
    assert (covariance(white) - torch.eye(48, dtype=torch.float64)).abs().max() < 5e-3


def test_whitened_covariance_is_exactly_identity_minus_eps_t_squared(digits, digits_zca):
    # The general case: directions with variance near eps are shrunk, not whitened.
    t = digits_zca.transform.double()
    expected = torch.eye(64, dtype=torch.float64) - 0.1 * t @ t
    assert (covariance(digits_zca.apply(digits[0])) - expected).abs().max() < 1e-5


def test_apply_checks_the_shape_and_keeps_dtype_and_device(digits_zca):
    out = digits_zca.apply(torch.zeros(2, 1, 8, 8, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"fitted on images of shape \(1, 8, 8\)"):
        digits_zca.apply(torch.zeros(2, 3, 8, 8))


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 images"):
        fit_zca(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="float images"):
        fit_zca(torch.zeros(5, 4, 4))


def test_round_trip_through_torch_load_weights_only(digits, digits_zca):
    buffer = io.BytesIO()
    torch.save(digits_zca.to_dict(), buffer)
    buffer.seek(0)
    loaded = ZCA.from_dict(torch.load(buffer, weights_only=True))
    assert loaded.shape == (1, 8, 8) and loaded.eps == 0.1
    assert loaded.reference == digits_zca.reference
    assert torch.equal(loaded.apply(digits[0][:5]), digits_zca.apply(digits[0][:5]))


# --- is a syn set in ZCA space? -------------------------------------------------------------


def test_neighbour_correlation_of_smooth_noise_and_constant_images():
    g = gen(0)
    noise = torch.randn(20, 3, 8, 8, generator=g)
    smooth = noise.cumsum(2).cumsum(3)
    assert abs(neighbour_correlation(noise)) < 0.1
    assert neighbour_correlation(smooth) > 0.8
    assert neighbour_correlation(torch.ones(2, 1, 4, 4)) == 0.0


def test_fit_records_the_real_correlations(digits_zca):
    ref = digits_zca.reference
    assert ref["pixel"] > 0.5 and ref["whitened"] < 0.15
    assert digits_zca.threshold() == pytest.approx((ref["pixel"] + ref["whitened"]) / 2)


@pytest.mark.parametrize("per_class", [1, 10])
def test_real_digit_sets_are_told_apart_both_ways(digits, digits_zca, per_class):
    x, y = digits
    subset = torch.cat([x[y == c][:per_class] for c in range(10)])  # like an IPC-k set
    assert not looks_whitened(subset, digits_zca)
    assert looks_whitened(digits_zca.apply(subset), digits_zca)
    assert not looks_whitened(subset) and looks_whitened(digits_zca.apply(subset))  # no fit


@pytest.fixture(scope="module")
def smooth() -> tuple[torch.Tensor, torch.Tensor, ZCA]:
    x, y = smooth_images(1000, 10, 16, seed=1)
    return x, y, fit_zca(x)


@pytest.mark.parametrize("per_class", [1, 10])
def test_natural_like_sets_are_told_apart_both_ways(smooth, per_class):
    x, y, zca = smooth
    subset = torch.cat([x[y == c][:per_class] for c in range(10)])
    assert not looks_whitened(subset, zca)
    assert looks_whitened(zca.apply(subset), zca)


def test_pixel_space_class_means_are_flagged(smooth):
    # Class means, like some distilled sets, are smoother than single images: in pixel space
    # they are flagged all the more. (In ZCA space they can be flagged too: see the module doc.)
    x, y, zca = smooth
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    assert not looks_whitened(means, zca)


def test_warns_loudly_for_pixel_space_and_stays_quiet_for_zca_space(digits, digits_zca, caplog):
    x = digits[0][:10]
    with pytest.warns(UserWarning, match=r"the syn set does NOT look ZCA-whitened"):
        report = warn_if_not_whitened(x, digits_zca)
    assert not report["looks_whitened"]
    assert "does NOT look ZCA-whitened" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_not_whitened(digits_zca.apply(x), digits_zca)["looks_whitened"]


def test_report_lists_the_statistics(digits, digits_zca):
    report = whitening_report(digits[0][:10], digits_zca)
    assert set(report) == {
        "neighbour_corr",
        "real_pixel_neighbour_corr",
        "real_whitened_neighbour_corr",
        "threshold",
        "looks_whitened",
        "mean",
        "std",
    }
