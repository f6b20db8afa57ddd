"""Reading a method's distilled set into a set file, and checking it.

Everything that can be wrong with a user's files is caught here, before any training,
with one error (`InputError`) naming the file, the field and what was expected.

Accepted inputs:
- `images`: a `.pt` holding a float tensor (N, C, H, W) in the dataset's normalised
  space, or a uint8 tensor of 0-255 pixels (normalised here), or a dict with
  `images` (and optionally `labels`, `soft_labels`, `lr`); or an image folder with one subfolder per
  class (png/jpg, read as 0-255 pixels and normalised here), labelled by its folder;
- `labels`: absent (class-sorted hard labels, as the reference assumes), a `.pt`
  holding hard labels (N,) or soft labels (N, num_classes); soft labels alone leave the
  hard labels class-sorted (or the folders'), as the reference's, never their argmax;
- `soft_labels`: a `.pt` of (N, num_classes) teacher logits, used by mode-S protocols;
- `lr`: a number, or a `.pt` / `.txt` file holding one.

For a dataset with `zca`, the set must be a float tensor in ZCA space (as MTT/DATM save
theirs): uint8 tensors and image folders are refused (pixels cannot be in ZCA space), and
a float set whose statistics look un-whitened gets a loud warning with the numbers (not an
error: the heuristic of `zca.py` can misfire, e.g. on sets of class means).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from ddrank_steps.data import value_range
from ddrank_steps.data.image_files import class_folders, list_images
from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.data.zca import ZCA, warn_if_not_whitened
from ddrank_steps.errors import InputError
from ddrank_steps.runtime.checked_read import PLAIN_OBJECTS_FIX, load_torch

log = logging.getLogger("ddrank.syn_import")


def import_set(
    method: str,
    images: str,
    labels: str | None,
    lr,
    ipc: int,
    meta: DatasetMeta,
    soft_labels: str | None = None,
    zca: ZCA | None = None,
    reference_set: bool = False,
):
    """The set file of a method's inputs. For a dataset with `zca`, `zca` is its fit (the
    images are checked to look whitened), unless the images are a `reference_set` (built
    by the reference_set stage from the whitened train split, so in ZCA space by construction)."""
    if meta.zca and zca is None and not reference_set:
        raise ValueError(f"dataset {meta.name} has zca: import_set needs its ZCA fit")
    x, inline_labels, inline_lr, folder_labels, inline_soft = read_set_images(images, meta)
    range_warning = check_value_range(x, images, meta)
    hard, soft, labelled = set_labels(
        x.shape[0], ipc, meta, images, labels, inline_labels, folder_labels
    )
    if soft_labels is not None:
        soft = read_soft_labels(soft_labels, x.shape[0], meta)
    elif inline_soft is not None:
        soft = check_soft_labels(inline_soft, x.shape[0], meta, images, "soft_labels")
    lr_value = resolve_lr(lr if lr is not None else inline_lr, images)
    zca_check = _check_zca_space(x, method, images, meta, zca, reference_set)
    info = {
        "kind": "syn",
        "method": method,
        "dataset": meta.name,
        "ipc": ipc,
        "images": images,
        "labels": labels,
        "soft_labels": soft_labels,
        "label_kind": _label_kind(soft, folder_labels, labels, labelled),
        "lr": lr_value,
    }
    if zca_check is not None:
        info["zca_check"] = zca_check
    if range_warning is not None:  # carried to the run files, the score and the leaderboard
        info["value_range"] = range_warning
    blob = {"images": x, "labels": hard, "info": info}
    if soft is not None:
        blob["soft_labels"] = soft
    if lr_value is not None:
        blob["lr"] = lr_value
    return blob


def check_value_range(x: torch.Tensor, images: str, meta: DatasetMeta) -> str | None:
    """Refuse a set far outside the dataset's normalised space (`value_range`); return the
    warning for an ambiguous one (None when it looks normalised, or for a ZCA dataset)."""
    if meta.zca:
        return None
    found = value_range.judge(x, meta.mean, meta.std)
    if found is None:
        return None
    kind, what, fix = found
    if kind == "error":
        raise InputError(images, "images", what, fix)
    log.warning("%s: field 'images': %s. If not: %s", images, what, fix)
    return what


def _check_zca_space(
    x: torch.Tensor, method: str, images: str, meta: DatasetMeta, zca, reference_set: bool
):
    """The whitening check of `zca.py` (warns when the set looks un-whitened), or None for
    a dataset without zca and for a reference set (in ZCA space by construction)."""
    if meta.zca and reference_set:
        log.info("%s: a reference set of the whitened train split, in ZCA space", images)
        return None
    if zca is not None:
        return warn_if_not_whitened(x, zca, what=f"syn set {method} ({images})")
    return None


def _label_kind(soft, folder_labels, labels: str | None, labelled: bool) -> str:
    """How the set is labelled, for the set file's info: soft, folder, hard, class-sorted."""
    if soft is not None:
        return "soft"
    if folder_labels is not None and labels is None:
        return "folder"
    return "hard" if labelled else "class-sorted"


def read_set_images(images: str, meta: DatasetMeta):
    """(normalised images, inline labels, inline lr, folder labels, inline soft labels) of
    a `.pt` file or a class-folder tree: a `.pt` dict may hold labels, soft_labels and lr; a
    tree is labelled by its folders (and those are its inline labels)."""
    if Path(images).is_dir():
        x, folder_labels = read_image_folder(images, meta)
        return x, folder_labels, None, folder_labels, None
    x, inline_labels, inline_lr, inline_soft = read_images(images, meta)
    return x, inline_labels, inline_lr, None, inline_soft


def set_labels(
    n: int,
    ipc: int,
    meta: DatasetMeta,
    images: str,
    labels: str | None,
    inline_labels,
    folder_labels: torch.Tensor | None,
):
    """(hard labels, soft labels or None, whether labels were given) of a set of `n`
    images: from the `labels` file, else those inline in `images`, else class-sorted;
    checked against the class folders and `ipc`."""
    if labels is not None:
        label_blob = _load_pt(labels, "labels")
        label_source = labels
    else:
        label_blob, label_source = inline_labels, images
    hard, soft = resolve_labels(label_blob, n, ipc, meta, label_source)
    if hard is None:  # soft labels only: hard labels as the reference builds them
        hard = (
            folder_labels if folder_labels is not None else class_sorted(n, ipc, meta, label_source)
        )
        agree = float((soft.argmax(1) == hard).float().mean())
        log.info(
            "%s: soft labels (N, classes) without hard labels; the hard labels are %s, as the "
            "reference's; the soft labels' argmax agrees with them on %.1f%% of images",
            label_source,
            "the class folders" if folder_labels is not None else "class-sorted",
            100 * agree,
        )
    if folder_labels is not None and labels is not None:
        if soft is None and not torch.equal(hard, folder_labels):
            wrong = int((hard != folder_labels).sum())
            raise InputError(
                labels,
                "labels",
                f"{wrong} hard labels disagree with the class folders of {images}",
                "drop labels: the folders already label the images",
            )
        hard = folder_labels  # soft labels keep the folder as their hard label
    check_ipc(hard, ipc, meta, label_source)
    return hard, soft, label_blob is not None


def class_sorted(n: int, ipc: int, meta: DatasetMeta, source: str) -> torch.Tensor:
    """`[0]*ipc + [1]*ipc + …`, the reference's hard labels when it is given none."""
    k = meta.num_classes
    if n != k * ipc:
        raise InputError(
            source,
            "labels",
            f"absent or soft only, so class-sorted hard labels are assumed, but there are {n} "
            f"images and num_classes x ipc = {k} x {ipc} = {k * ipc}",
            "give hard labels in `labels` (and soft ones in `soft_labels`), or check the "
            "method's ipc",
        )
    return torch.arange(k).repeat_interleave(ipc)


def _load_pt(path: str, field: str):
    if not Path(path).is_file():
        raise InputError(path, field, "file not found", "check the method's path in the config")
    return load_torch(path, fix=f"save it again with torch.save; {PLAIN_OBJECTS_FIX}", field=field)


def read_images(path: str, meta: DatasetMeta):
    """Normalised float images, plus labels, lr and soft_labels when the file is a dict."""
    blob = _load_pt(path, "images")
    labels = lr = soft = None
    if isinstance(blob, dict):
        if "images" not in blob:
            raise InputError(
                path, "images", f"dict has keys {sorted(blob)} but no 'images'", "add 'images'"
            )
        labels, lr, soft = blob.get("labels"), blob.get("lr"), blob.get("soft_labels")
        if soft is not None and not isinstance(soft, torch.Tensor):
            raise InputError(path, "soft_labels", f"is a {type(soft).__name__}, not a tensor")
        blob = blob["images"]
    if not isinstance(blob, torch.Tensor):
        raise InputError(path, "images", f"is a {type(blob).__name__}, not a tensor")
    expected = (meta.channels, meta.height, meta.width)
    if blob.dim() != 4 or tuple(blob.shape[1:]) != expected:
        raise InputError(
            path,
            "images",
            f"shape {tuple(blob.shape)} does not match dataset {meta.name}",
            f"expected (N, {expected[0]}, {expected[1]}, {expected[2]})",
        )
    if blob.shape[0] == 0:
        raise InputError(path, "images", "holds no images", "save num_classes x ipc images")
    if blob.dtype == torch.uint8:
        if meta.zca:
            raise InputError(
                path,
                "images",
                f"is uint8 pixels, but dataset {meta.name} is ZCA-whitened (zca: true) and "
                "uint8 pixels cannot be in ZCA space",
                "save the set as float32 in ZCA space (as MTT/DATM do), or use a dataset "
                "without zca",
            )
        blob = _pixels_to_normalised(blob, meta)
    elif not blob.is_floating_point():
        raise InputError(path, "images", f"dtype {blob.dtype}", "use float32 or uint8 pixels")
    blob = blob.float()
    bad = (~torch.isfinite(blob)).sum().item()
    if bad:
        raise InputError(path, "images", f"{bad} NaN or infinite pixel values", "fix the tensor")
    if blob.min() >= 0 and blob.max() > 20:
        raise InputError(
            path,
            "images",
            f"values span [{blob.min():.1f}, {blob.max():.1f}], which looks like raw 0-255 pixels",
            "save uint8 pixels, or normalise with the dataset's mean/std",
        )
    return blob, labels, lr, soft


def _pixels_to_normalised(pixels: torch.Tensor, meta: DatasetMeta) -> torch.Tensor:
    x = pixels.float() / 255.0
    mean = torch.tensor(meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(meta.std).view(1, -1, 1, 1)
    return (x - mean) / std


def folder_classes(path: str, meta: DatasetMeta) -> list[str]:
    """Class subfolders in label order: by the dataset's class names when the folders
    are exactly those names (so wnid folders of an ImageNet subset get the subset's own
    order), else sorted, as torchvision's ImageFolder (the reference) numbers them."""
    folders = class_folders(Path(path))
    k = meta.num_classes
    if len(folders) != k:
        shown = ", ".join(folders[:6]) + (" …" if len(folders) > 6 else "")
        raise InputError(
            path,
            "images",
            f"has {len(folders)} class folders ({shown or 'none'}); dataset {meta.name} has "
            f"{k} classes",
            f"one subfolder per class: sorted names are the class ids (00000 … {k - 1:05d}), "
            "or the dataset's class names",
        )
    if set(folders) == set(meta.classes):
        return list(meta.classes)
    return folders


def read_image_folder(path: str, meta: DatasetMeta) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images and folder labels of a class-folder tree of png/jpg files.

    Images must already be the dataset's size: a distilled image is optimised pixel by
    pixel at that resolution, and resampling it would score a different set.
    """
    from PIL import Image, UnidentifiedImageError

    if meta.zca:
        raise InputError(
            path,
            "images",
            f"is an image folder, but dataset {meta.name} is ZCA-whitened (zca: true) and "
            "image files hold pixels, which cannot be in ZCA space",
            "save the set as a float32 .pt tensor in ZCA space (as MTT/DATM do)",
        )
    mode = {1: "L", 3: "RGB"}.get(meta.channels)
    if mode is None:
        raise InputError(path, "images", f"image folders need 1 or 3 channels, not {meta.channels}")
    pixels, labels = [], []
    for label, name in enumerate(folder_classes(path, meta)):
        files = list_images(Path(path) / name)
        if not files:
            raise InputError(
                Path(path) / name,
                "images",
                f"class {label} folder holds no png/jpg images",
                "every class needs its ipc images",
            )
        for file in files:
            try:
                with Image.open(file) as image:
                    size = image.size
                    image = image.convert(mode)
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
                raise InputError(file, "images", f"cannot be decoded as an image ({exc})") from None
            if size != (meta.width, meta.height):
                raise InputError(
                    file,
                    "images",
                    f"is {size[0]}x{size[1]} pixels; dataset {meta.name} images are "
                    f"{meta.width}x{meta.height}",
                    "save the set at the dataset's resolution (it is not resampled)",
                )
            array = np.asarray(image, dtype=np.uint8)
            array = array[:, :, None] if array.ndim == 2 else array
            pixels.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
            labels.append(label)
    return _pixels_to_normalised(torch.stack(pixels), meta), torch.tensor(labels)


def resolve_labels(labels, n: int, ipc: int, meta: DatasetMeta, source: str):
    """Hard labels (N,) and, when given, soft labels (N, K); hard labels are None when the
    labels are soft only (the caller takes the folders' or class-sorted ones)."""
    k = meta.num_classes
    if labels is None:
        return class_sorted(n, ipc, meta, source), None
    if not isinstance(labels, torch.Tensor):
        raise InputError(source, "labels", f"is a {type(labels).__name__}, not a tensor")
    if labels.dim() == 0:
        raise InputError(source, "labels", "is a single number", "hard (N,) ints or soft (N, K)")
    if labels.shape[0] != n:
        raise InputError(
            source, "labels", f"{labels.shape[0]} labels for {n} images", "one label per image"
        )
    if labels.dim() == 2:
        # Not argmax: a teacher's soft label need not point at the class an image was
        # distilled for (SRe2L, RDED), and the rdm baseline needs ipc images per class.
        return None, check_soft_labels(labels, n, meta, source, "labels")
    fractional = labels.is_floating_point() and not torch.equal(labels, labels.round())
    if labels.dim() != 1 or fractional:
        raise InputError(
            source, "labels", f"shape {tuple(labels.shape)}", "hard (N,) ints or soft (N, K)"
        )
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= k:
        raise InputError(
            source,
            "labels",
            f"values span [{labels.min()}, {labels.max()}]",
            f"class ids in [0, {k - 1}]",
        )
    return labels, None


def resolve_lr(value, source: str):
    if value is None:
        return None
    if isinstance(value, str):
        path = value
        if path.endswith(".txt"):
            if not Path(path).is_file():
                raise InputError(path, "lr", "file not found", "check the method's lr path")
            text = Path(path).read_text().strip()
            try:
                value = float(text)
            except ValueError:
                raise InputError(path, "lr", f"'{text}' is not a number") from None
        else:
            value = _load_pt(path, "lr")
        source = path
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InputError(source, "lr", f"tensor of shape {tuple(value.shape)}", "one number")
        value = value.item()
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(source, "lr", f"{value!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(source, "lr", f"{value} is not a positive finite number")
    return value


def check_ipc(labels: torch.Tensor, ipc: int, meta: DatasetMeta, source: str) -> None:
    counts = torch.bincount(labels, minlength=meta.num_classes)
    wrong = [(c, int(n)) for c, n in enumerate(counts.tolist()) if n != ipc]
    if wrong:
        shown = ", ".join(f"class {c}: {n}" for c, n in wrong[:5])
        raise InputError(
            source,
            "labels",
            f"images per class differ from ipc={ipc} ({shown})",
            "the rdm baseline draws exactly ipc images per class; match it or fix ipc",
        )


def read_soft_labels(path: str, n: int, meta: DatasetMeta) -> torch.Tensor:
    soft = _load_pt(path, "soft_labels")
    if not isinstance(soft, torch.Tensor) or soft.dim() != 2:
        shape = tuple(soft.shape) if isinstance(soft, torch.Tensor) else type(soft).__name__
        raise InputError(path, "soft_labels", f"is {shape}", f"a ({n}, {meta.num_classes}) tensor")
    return check_soft_labels(soft, n, meta, path, "soft_labels")


def check_soft_labels(soft: torch.Tensor, n: int, meta: DatasetMeta, source: str, field: str):
    """(N, classes) finite teacher logits, as float; `field` names where they came from."""
    k = meta.num_classes
    if tuple(soft.shape) != (n, k):
        raise InputError(
            source,
            field,
            f"soft labels of shape {tuple(soft.shape)} for {n} images of dataset {meta.name}",
            f"expected (N, {k}) = ({n}, {k}): one row of teacher logits per image",
        )
    if not torch.isfinite(soft).all():
        raise InputError(source, field, "soft labels hold NaN or infinite values")
    return soft.float()
