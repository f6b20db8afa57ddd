"""A protocol's `train_transforms` / `test_transforms`, applied where training sees images.

The reference runs these lists on PIL images as a Dataset decodes them, and only for
image-folder input: a `.pt` syn set trains without them while the random baseline (a
folder) trains with them. Here every set a protocol trains (syn set, rdm subset,
reference set, the real train split) goes through the same list, whatever its file
format, and every term of a score is tested under the same `test_transforms` (the plan
gives the real-hard run the score's list too).

Sets and splits are float tensors in the dataset's normalised space, so a list runs on
each image as [0, 1] pixels (de-normalised with the dataset's mean/std), which is what
its items expect (RandomCrop's zero padding is black, ColorJitter clamps to [0, 1]):

- conversion items (ToTensor, PILToTensor, ToImage, ToPureTensor) are skipped: the image
  is already a float tensor in [0, 1]. ToPILImage is refused;
- Normalize stays where it is written, so items after it (RandomErasing with value 0)
  act in normalised space as in the reference; its mean/std must be the dataset's, since
  the test split and every other set are normalised with those. A list without a
  Normalize is normalised after its last item;
- the output must keep the dataset's image size: the model, its teachers and the test
  split are all at that size (the reference's demos train at 64 px and test at 224 px).
  To work at another size, prepare the dataset at it (`datasets.<name>.image_size`).

Train lists draw their randomness per image, as a DataLoader's per-sample transform
does (flips and crops vectorised over the batch, see `transforms.vectorised`), from a
stream of their own that the engine seeds from the run's seed (`reseed`). Test lists
must be deterministic (checked on the first images), so they are applied once to
cached test/val splits, and per batch to streamed ones.

A dataset with ZCA is refused: its sets are stored whitened, with no pixels to give a
list (use `augmentation: dsa`, which works in any space).
"""

from __future__ import annotations

import contextlib

import torch

from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.errors import ConfigError
from ddrank_steps.transforms.build import build_transforms
from ddrank_steps.transforms.vectorised import stages

TRANSFORM_KEYS = ("train_transforms", "test_transforms")
CONVERSIONS = frozenset({"ToTensor", "PILToTensor", "ToImage", "ToPureTensor"})
STATS_TOLERANCE = 1e-4  # configs write the statistics to four decimals
_CHUNK = 1024  # images per step when a test list is applied to a whole split


class BatchTransform:
    """One protocol list (`key` names it in errors), applied to batches with per-image draws."""

    def __init__(self, spec: list[dict], meta: DatasetMeta, key: str):
        self.key = key
        if meta.zca:
            raise ConfigError(
                f"{key}: dataset {meta.name} is ZCA-whitened, so its sets hold no pixels for "
                "these transforms to work on; remove them (augmentation: dsa works in ZCA space)"
            )
        from torchvision.transforms import v2

        self.mean, self.std = list(meta.mean), list(meta.std)
        self.names: list[str] = []
        items = []
        has_normalize = False
        for i, (item, built) in enumerate(
            zip(spec, build_transforms(spec, key).transforms, strict=True)
        ):
            # torchvision's conversions and Normalize only: a user's class of that name is
            # theirs (named by import path) and runs as written
            ours = type(built).__module__.startswith("torchvision.")
            name = type(built).__name__ if ours else str(item.get("name"))
            where = f"{key}[{i}] ({name})"
            if name in CONVERSIONS:
                continue
            if name == "ToPILImage":
                raise ConfigError(
                    f"{where}: images stay tensors here; remove it (PIL-only items work on "
                    "tensors too in torchvision.transforms.v2)"
                )
            if name == "Normalize":
                self._check_stats(built, meta, where)
                built, has_normalize = v2.Normalize(self.mean, self.std), True
            items.append(built)
            self.names.append(str(item.get("name")))
        # only conversions and the dataset's own Normalize: the images stay as they are
        self.identity = all(isinstance(t, v2.Normalize) for t in items)
        if not has_normalize:
            items.append(v2.Normalize(self.mean, self.std))
        self.stages = stages(items)
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._seed: int | None = None
        self._rng: tuple | None = None  # (CPU state, CUDA state) between batches

    def reseed(self, seed: int) -> None:
        """Draw from a stream of this seed from now on, whatever else uses the global RNG
        (a DataLoader takes a seed from it for every epoch of a streamed split)."""
        self._seed, self._rng = seed, None

    def stream_state(self) -> tuple:
        """Where this list's own stream is (a checkpoint keeps it)."""
        return self._seed, self._rng

    def set_stream_state(self, state: tuple) -> None:
        self._seed, self._rng = state

    @contextlib.contextmanager
    def _own_rng(self, device: torch.device):
        """torchvision draws from the global RNG: swap this list's own state in and out."""
        if self._seed is None:
            yield
            return
        cuda = device.type == "cuda"
        index = None
        if cuda:
            index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index] if cuda else []):
            if self._rng is None:
                torch.default_generator.manual_seed(self._seed)
                if cuda:
                    torch.cuda.default_generators[index].manual_seed(self._seed)
            else:
                torch.set_rng_state(self._rng[0])
                if cuda:
                    torch.cuda.set_rng_state(self._rng[1], index)
            yield
            self._rng = (torch.get_rng_state(), torch.cuda.get_rng_state(index) if cuda else None)

    def _check_stats(self, normalize, meta: DatasetMeta, where: str) -> None:
        given = (list(normalize.mean), list(normalize.std))
        same = all(
            len(g) == len(d)
            and all(abs(a - b) <= STATS_TOLERANCE for a, b in zip(g, d, strict=True))
            for g, d in zip(given, (self.mean, self.std), strict=True)
        )
        if not same:
            raise ConfigError(
                f"{where}: mean {given[0]} / std {given[1]} differ from dataset {meta.name}'s "
                f"normalisation (mean {self.mean} / std {self.std}), which the test split and "
                f"every other set use; remove the item, or set datasets.{meta.name}.mean/std "
                "to these values"
            )

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images back to [0, 1] pixels."""
        stats = self._stats.get(images.device)
        if stats is None:  # once per device: no host-to-device copy per batch
            mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
            stats = self._stats[images.device] = (mean, std)
        return images * stats[1] + stats[0]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The list applied to each image of a normalised batch, each with its own draws."""
        if self.identity:
            return images
        try:
            with self._own_rng(images.device):
                out = self.pixels(images)
                for stage in self.stages:
                    out = stage(out)
        except (TypeError, ValueError, RuntimeError) as exc:
            shape = "x".join(str(s) for s in images.shape[1:])
            raise ConfigError(f"{self.key} {self.names} failed on a {shape} image: {exc}") from None
        out = out.as_subclass(torch.Tensor)
        if out.shape[1:] != images.shape[1:] or not out.is_floating_point():
            raise ConfigError(
                f"{self.key} {self.names} turn {tuple(images.shape[1:])} float images into "
                f"{tuple(out.shape[1:])} {out.dtype} ones; every item must keep the dataset's "
                "image size and float pixels: the model, its teachers and the test split are "
                "at that size (prepare the dataset at another one with "
                "datasets.<name>.image_size)"
            )
        return out

    def check_deterministic(self, images: torch.Tensor) -> None:
        """Raise unless the list gives the same images under two different seeds."""
        sample = images[:4].cpu()
        outs = []
        for seed in (1, 2):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                outs.append(self(sample))
        if not torch.equal(*outs):
            raise ConfigError(
                f"{self.key} {self.names} draw random values; a test transform must give "
                "every run the same test images, so random items belong in train_transforms"
            )

    def apply_to_split(self, images):
        """A whole test/val split under a (deterministic) test list: computed once for a
        cached split, attached per batch to a streamed one."""
        from ddrank_steps.data import streaming

        if streaming.is_streamed(images):
            self.check_deterministic(images[torch.arange(min(4, len(images)))])
            return images.with_transform(self)
        self.check_deterministic(images)
        return torch.cat([self(images[i : i + _CHUNK]) for i in range(0, len(images), _CHUNK)])


def protocol_transforms(
    protocol: dict, meta: DatasetMeta
) -> tuple[BatchTransform | None, BatchTransform | None]:
    """(train, test) lists of a run protocol; None where it gives none."""
    built = []
    for key in TRANSFORM_KEYS:
        spec = protocol.get(key)
        built.append(BatchTransform(spec, meta, key) if spec else None)
    return built[0], built[1]
