"""Streaming a real split from its image files, for datasets too large to cache (ImageNet).

A streamed split is a `StreamedImages` in place of the images tensor of an
`engine.Split`: it knows the files, the decode size and the normalisation, and
behaves like the tensor where the stages need it (`len`, `shape`, `device`, `.to()`,
indexing by a tensor of indices, which decodes just those files). Training and
evaluation iterate it with a DataLoader instead:

- worker processes decode the files (`image_files.decode`, the same code that
  builds the cache of small datasets, so cached and streamed pixels are identical);
- batches come back as uint8 (4x less to copy than float), in pinned memory on CUDA,
  and are normalised on the device;
- the batch order is the engine's own seeded permutation, handed to the loader as its
  batch sampler, so a streamed run sees exactly the batches of a cached run with the
  same seed; augmentation is then applied per batch on the device as for tensors;
- the loaders are persistent, so the workers survive from one epoch (and one LR of the
  grid) to the next.

A file that cannot be decoded inside a worker is reported by decoding it again in the
main process, which raises the usual `InputError` naming the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch.utils.data import DataLoader, Dataset

from ddrank_steps.data.image_files import decode
from ddrank_steps.errors import InputError

log = logging.getLogger("ddrank.streaming")


class FileDataset(Dataset):
    """(uint8 pixels, index, decoded ok) of each file; the labels stay with the split."""

    def __init__(self, root: str, paths: list[str], size: int):
        self.root, self.paths, self.size = root, paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])

    def __getitem__(self, i: int):
        try:
            return decode(self.path(i), self.size), i, True
        except InputError:  # re-raised in the main process, where it keeps its message
            return torch.zeros((3, self.size, self.size), dtype=torch.uint8), i, False


class _OrderedBatches:
    """A batch sampler over an order that the engine sets before each epoch."""

    def __init__(self, order: list[int], batch_size: int):
        self.order, self.batch_size = order, batch_size

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            yield self.order[start : start + self.batch_size]

    def __len__(self) -> int:
        return (len(self.order) + self.batch_size - 1) // self.batch_size


@dataclass
class StreamedImages:
    """The images of a streamed split: files decoded on demand, normalised like the cache."""

    root: str
    paths: list[str]
    size: int
    mean: list[float]
    std: list[float]
    max_value: float
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    workers: int = 0
    # a deterministic per-batch transform of evaluated splits (a protocol's test_transforms)
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    _loaders: dict = field(default_factory=dict, repr=False, compare=False)  # and stats

    # --- what the stages use of a tensor --------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), 3, self.size, self.size)

    def __len__(self) -> int:
        return len(self.paths)

    def to(self, device, non_blocking: bool = False) -> StreamedImages:
        return replace(self, device=torch.device(device), _loaders={})

    def with_transform(self, transform) -> StreamedImages:
        return replace(self, transform=transform, _loaders={})

    def __getitem__(self, idx) -> torch.Tensor:
        """Normalised float images of the given indices (decodes only those files)."""
        return self.normalise(self.raw(idx).to(self.device))

    # --- decoding ------------------------------------------------------------------------
    def dataset(self) -> FileDataset:
        return FileDataset(self.root, self.paths, self.size)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """The cache's normalisation (`data.normalise`), on the pixels' device."""
        x = pixels.float() / self.max_value
        stats = self._loaders.get(("stats", x.device))
        if stats is None:  # made once per device: no host-to-device copy per batch
            mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
            stats = self._loaders[("stats", x.device)] = (mean, std)
        return (x - stats[0]) / stats[1]

    def check(self, ok: torch.Tensor, idx: torch.Tensor) -> None:
        if not bool(ok.all()):
            bad = int(idx[~ok][0])
            decode(self.dataset().path(bad), self.size)  # raises the InputError
            raise RuntimeError(f"file {self.paths[bad]} failed to decode in a worker only")

    def raw(self, idx) -> torch.Tensor:
        """uint8 pixels of the given indices, on the CPU."""
        indices = torch.as_tensor(idx).reshape(-1).tolist()
        return decode_files(self.dataset(), indices, self.workers)

    def loader(self, key: str, order: list[int], batch_size: int) -> DataLoader:
        """A persistent loader per use (train order, evaluation), its order replaced."""
        loader = self._loaders.get((key, batch_size))
        if loader is None:
            loader = DataLoader(
                self.dataset(),
                batch_sampler=_OrderedBatches(order, batch_size),
                num_workers=self.workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=self.workers > 0,
            )
            self._loaders[(key, batch_size)] = loader
        loader.batch_sampler.order = order
        return loader


def is_streamed(images) -> bool:
    return isinstance(images, StreamedImages)


def decode_files(
    dataset: FileDataset, indices: list[int], workers: int, batch_size: int = 64
) -> torch.Tensor:
    """uint8 (len(indices), 3, S, S) pixels of those files, decoded by `workers` processes."""
    out = torch.empty((len(indices), 3, dataset.size, dataset.size), dtype=torch.uint8)
    loader = DataLoader(
        dataset,
        batch_sampler=_OrderedBatches(list(indices), batch_size),
        num_workers=workers,
    )
    done = 0
    report = max(len(indices) // 10, 1)
    for pixels, idx, ok in loader:
        if not bool(ok.all()):
            bad = int(idx[~ok][0])
            decode(dataset.path(bad), dataset.size)
        out[done : done + len(idx)] = pixels
        before, done = done, done + len(idx)
        if len(indices) > 10_000 and before // report != done // report:
            log.info("decoded %d / %d images", done, len(indices))
    return out


def train_batches(split, order: torch.Tensor, batch_size: int):
    """(images, labels, soft) batches of a streamed train split in the given order."""
    images: StreamedImages = split.images
    device = images.device
    loader = images.loader("train", order.tolist(), batch_size)
    for pixels, idx, ok in loader:
        images.check(ok, idx)
        idx = idx.to(split.labels.device, non_blocking=True)
        x = images.normalise(pixels.to(device, non_blocking=True))
        soft = split.soft[idx] if split.soft is not None else None
        yield x, split.labels[idx], soft


@torch.inference_mode()
def evaluate(model: torch.nn.Module, split, batch_size: int) -> float:
    """Top-1 accuracy on a streamed split, in file order and batches of `batch_size`."""
    images: StreamedImages = split.images
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    loader = images.loader("eval", list(range(len(images))), batch_size)
    for pixels, idx, ok in loader:
        images.check(ok, idx)
        idx = idx.to(split.labels.device, non_blocking=True)
        x = images.normalise(pixels.to(images.device, non_blocking=True))
        out = model(images.transform(x) if images.transform is not None else x)
        correct += (out.argmax(1) == split.labels[idx]).sum()
    model.train()
    return correct.item() / len(split.labels)
