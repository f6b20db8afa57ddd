"""Dataset-level ZCA whitening, fitted once on the real train split, as DC/MTT/DATM and the
reference (`use_zca`) do with kornia's `ZCAWhitening(eps=0.1)`.

The formula is kornia's: with x the flattened images (N, D),
    μ = mean over N,  Σ = (x − μ)ᵀ(x − μ) / (N − 1)   (unbiased),
    Σ = U diag(S) Uᵀ,  T = U diag((S + eps)^−½) Uᵀ,  x' = (x − μ) T.
Two choices of ours: the covariance and its decomposition are computed in float64 (kornia
uses the images' dtype), and with `eigh` rather than `svd` (for a symmetric positive
semi-definite Σ they give the same U and S, and eigh is several times faster), in chunks,
with no float64 copy of the data. D = 3·64·64 (12,288 pixels, 13,000 images) took 16 CPU
minutes and 5 GB besides the images on 2 cores; pass `device="cuda"` to fit on a GPU.
The whitened covariance of the
fit data is then exactly U diag(S / (S + eps)) Uᵀ = I − eps·T²: the identity along every
direction whose variance is well above eps, shrunk along the rest.

Distilled sets of ZCA protocols are stored in ZCA space (MTT and DATM save them so). A set in
pixel space trains to meaningless accuracy without any error, so `warn_if_not_whitened`
checks it. The heuristic: natural images are smooth, so neighbouring pixels correlate
strongly (about 0.5 for 8-px digits, 0.9 for CIFAR); whitening removes exactly those
correlations (about 0.1 after ZCA with eps 0.1). `neighbour_correlation` measures this for
a set, `fit_zca` records it for the real train split before and after whitening, and a set
looks whitened when its correlation is below the midpoint of the two (`DEFAULT_THRESHOLD`
without a fit). Its limits, both ways: a pixel-space set that is itself noisy (a
distillation started from noise) can pass unflagged; and a set much smoother than single
real images (class means, k-means centroids) stays smoother after whitening too, so in ZCA
space it can be flagged although it is fine (8-px digit class means: 0.39 whitened, against
a 0.33 threshold). The warning gives the numbers, so a reader can tell which case it is.
(A test on the energy along the real data's principal directions, ∝ S in pixel space and
flat in ZCA space, fails the same way for class means and fails outright on 8-px digits,
whose spectrum above eps is nearly flat; so the simpler statistic was kept.)
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import torch

log = logging.getLogger("ddrank.zca")

DEFAULT_EPS = 0.1  # the DC/MTT/DATM setting the reference uses with use_zca
DEFAULT_THRESHOLD = 0.35  # neighbour correlation below which a set looks whitened (no fit)
_REFERENCE_IMAGES = 2048  # fit images used to record the correlations (evenly spaced)
_CHUNK = 2048  # images per chunk when accumulating the covariance and when applying


@dataclass
class ZCA:
    """A fitted whitening: `apply(x) = (flatten(x) − mean) · transform`, reshaped back."""

    mean: torch.Tensor  # (D,) float32
    transform: torch.Tensor  # (D, D) float32, symmetric
    eps: float
    shape: tuple[int, int, int]  # (C, H, W) of the images it was fitted on
    # Neighbour correlation of the fit images in pixel space and after whitening.
    reference: dict[str, float] = field(default_factory=dict)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, "ZCA.apply")
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(
                f"ZCA was fitted on images of shape {self.shape}, got {tuple(images.shape[1:])}"
            )
        mean = self.mean.to(images.device, images.dtype)
        transform = self.transform.to(images.device, images.dtype)
        flat = images.reshape(images.shape[0], -1)
        out = torch.cat(
            [(part - mean) @ transform for part in flat.split(_CHUNK)]
            or [flat.new_empty(0, flat.shape[1])]
        )
        return out.view(images.shape)

    def threshold(self) -> float:
        """Neighbour correlation below which a set looks whitened."""
        if {"pixel", "whitened"} <= set(self.reference):
            return 0.5 * (self.reference["pixel"] + self.reference["whitened"])
        return DEFAULT_THRESHOLD

    def to_dict(self) -> dict:
        """Plain tensors, numbers and lists: loadable with torch.load(weights_only=True)."""
        return {
            "mean": self.mean,
            "transform": self.transform,
            "eps": float(self.eps),
            "shape": list(self.shape),
            "reference": dict(self.reference),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ZCA:
        return cls(
            mean=data["mean"],
            transform=data["transform"],
            eps=float(data["eps"]),
            shape=tuple(int(s) for s in data["shape"]),
            reference={k: float(v) for k, v in data.get("reference", {}).items()},
        )


def fit_zca(
    images: torch.Tensor, eps: float = DEFAULT_EPS, device: torch.device | str | None = None
) -> ZCA:
    """Fit kornia's ZCA on `images` (N, C, H, W); compute on `device` (default: theirs).

    The cost is O(N·D² + D³) in float64: seconds for 8x8 digits and about a minute for
    CIFAR (D = 3,072) on 2 CPU cores, much longer for 64 px; once per dataset either way.
    """
    _check_images(images, "fit_zca")
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"fit_zca needs at least 2 images, got {n}")
    if not eps > 0:
        raise ValueError(f"fit_zca needs eps > 0, got {eps}")
    device = torch.device(device) if device is not None else images.device
    flat = images.reshape(n, -1)
    dim = flat.shape[1]
    mean = torch.zeros(dim, dtype=torch.float64, device=device)
    for part in flat.split(_CHUNK):
        mean += part.to(device, torch.float64).sum(0)
    mean /= n
    cov = torch.zeros(dim, dim, dtype=torch.float64, device=device)
    for part in flat.split(_CHUNK):
        centred = part.to(device, torch.float64) - mean
        cov.addmm_(centred.T, centred)
    cov /= n - 1
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    del cov
    eigenvalues = eigenvalues.clamp_min(0.0)  # rounding can leave tiny negative ones
    # T = V Vᵀ with V = U diag((S + eps)^−¼), scaled in place: one D×D copy fewer.
    scaled = eigenvectors.mul_((eigenvalues + eps).pow(-0.25))
    transform = (scaled @ scaled.T).float().cpu()
    del scaled, eigenvectors
    zca = ZCA(
        mean=mean.float().cpu(),
        transform=transform,
        eps=float(eps),
        shape=tuple(images.shape[1:]),
    )
    sample = _evenly_spaced(images, _REFERENCE_IMAGES)
    zca.reference = {
        "pixel": neighbour_correlation(sample),
        "whitened": neighbour_correlation(zca.apply(sample.float())),
    }
    return zca


def neighbour_correlation(images: torch.Tensor) -> float:
    """Correlation of horizontally and vertically adjacent pixels, pooled over the set.

    Each channel is centred by its mean over the set, then
    Σ a·b / √(Σ a² · Σ b²) over all pairs (a, b) of neighbouring pixels of a channel.
    """
    _check_images(images, "neighbour_correlation")
    if images.shape[2] < 2 and images.shape[3] < 2:
        raise ValueError("neighbour_correlation needs images of at least 2 pixels")
    x = images.double()
    x = x - x.mean(dim=(0, 2, 3), keepdim=True)
    pairs = [(x[..., :, :-1], x[..., :, 1:]), (x[..., :-1, :], x[..., 1:, :])]
    products = sum(float((a * b).sum()) for a, b in pairs)
    left = sum(float((a * a).sum()) for a, _ in pairs)
    right = sum(float((b * b).sum()) for _, b in pairs)
    if left == 0.0 or right == 0.0:
        return 0.0  # constant images: no correlation to speak of
    return products / (left * right) ** 0.5


def looks_whitened(
    images: torch.Tensor, zca: ZCA | None = None, threshold: float | None = None
) -> bool:
    """Whether `images` look like ZCA-space images (the heuristic of the module doc)."""
    if threshold is None:
        threshold = zca.threshold() if zca is not None else DEFAULT_THRESHOLD
    return neighbour_correlation(images) < threshold


def whitening_report(images: torch.Tensor, zca: ZCA) -> dict:
    """The statistics behind `looks_whitened`, to log with a set."""
    corr = neighbour_correlation(images)
    x = images.double()
    return {
        "neighbour_corr": corr,
        "real_pixel_neighbour_corr": zca.reference.get("pixel"),
        "real_whitened_neighbour_corr": zca.reference.get("whitened"),
        "threshold": zca.threshold(),
        "looks_whitened": corr < zca.threshold(),
        "mean": float(x.mean()),
        "std": float(x.std()) if x.numel() > 1 else 0.0,
    }


def warn_if_not_whitened(images: torch.Tensor, zca: ZCA, what: str = "the syn set") -> dict:
    """Warn loudly (a Python warning and a log line) when `images` look un-whitened."""
    report = whitening_report(images, zca)
    if not report["looks_whitened"]:
        pixel = report["real_pixel_neighbour_corr"]
        whitened = report["real_whitened_neighbour_corr"]
        real = (
            f" (real images: {pixel:.2f} in pixel space, {whitened:.2f} whitened)"
            if pixel is not None and whitened is not None
            else ""
        )
        message = (
            f"{what} does NOT look ZCA-whitened: neighbouring pixels correlate "
            f"{report['neighbour_corr']:.2f}, above the threshold {report['threshold']:.2f}"
            f"{real}. This protocol whitens the real data, so the set must be stored in ZCA "
            f"space (as MTT/DATM save it); pixel-space images would train to meaningless "
            f"accuracy. Whiten it, or score it under a protocol without ZCA."
        )
        warnings.warn(message, UserWarning, stacklevel=2)
        log.warning(message)
    return report


def _evenly_spaced(images: torch.Tensor, count: int) -> torch.Tensor:
    if images.shape[0] <= count:
        return images
    index = torch.linspace(0, images.shape[0] - 1, count).round().long()
    return images[index.to(images.device)]


def _check_images(images: torch.Tensor, what: str) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"{what} expects float images of shape (N, C, H, W), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
