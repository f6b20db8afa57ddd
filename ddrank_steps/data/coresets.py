"""Classic coresets of a real train split: the reference sets that give the leaderboard
something to rank.

- `random`: a random real subset, from a seed stream disjoint from the rdm-k subsets
  (so it is a second, independent random draw, not a copy of a baseline arm);
- `herding`: per class, greedily pick the real images whose running mean best matches
  the class mean (Welling 2009), in normalised pixel space;
- `kmeans`: per class, the k-means centroids (k = ipc) in pixel space: synthetic images
  that are not training samples, like a distilled set.
"""

from __future__ import annotations

import numpy as np
import torch

from ddrank_steps.data.set_files import class_indices, draw_per_class, make_set
from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.errors import InputError

KINDS = ("random", "herding", "kmeans")


def herding_order(features: torch.Tensor, k: int) -> list[int]:
    """Indices of `k` rows whose running mean greedily tracks the mean of all rows."""
    target = features.mean(0)
    running = torch.zeros_like(target)
    available = torch.ones(len(features), dtype=torch.bool)
    chosen: list[int] = []
    for t in range(1, k + 1):
        gap = ((target - (running + features) / t) ** 2).sum(1)
        gap[~available] = float("inf")
        i = int(torch.argmin(gap))
        chosen.append(i)
        available[i] = False
        running += features[i]
    return chosen


def kmeans_centroids(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features)
    # order centroids by cluster size (largest first) so the file is stable and readable
    sizes = np.bincount(km.labels_, minlength=k)
    return km.cluster_centers_[np.argsort(-sizes, kind="stable")]


def build(kind: str, images, labels, meta: DatasetMeta, ipc: int, seed: int, source: str):
    """The `kind` reference set of `ipc` images per class of the split (`images`, `labels`),
    drawn with `seed`; `source` names the split's file in errors."""
    info = {"kind": kind, "dataset": meta.name, "ipc": ipc, "seed": seed, "split": "train"}
    if kind == "random":
        idx = draw_per_class(labels, meta.num_classes, ipc, seed, source)
        info["indices"] = idx.tolist()
        return make_set(images[idx], labels[idx], info)
    per_class = class_indices(labels, meta.num_classes)
    for c, idx in enumerate(per_class):
        if len(idx) < ipc:
            raise InputError(source, f"class {c}", f"has {len(idx)} images < ipc={ipc}")
    if kind == "herding":
        picked = [idx[herding_order(images[idx].flatten(1), ipc)] for idx in per_class]
        idx = torch.cat(picked)
        info["indices"] = idx.tolist()
        return make_set(images[idx], labels[idx], info)
    shape = images.shape[1:]
    centroids = [
        torch.from_numpy(kmeans_centroids(images[idx].flatten(1).numpy(), ipc, seed + c))
        for c, idx in enumerate(per_class)
    ]
    out_images = torch.cat(centroids).float().view(-1, *shape)
    out_labels = torch.arange(meta.num_classes).repeat_interleave(ipc)
    return make_set(out_images, out_labels, info)
