"""Seeds derived from names, so every random choice is reproducible and independent.

Each random stream (a round's random subset, the reference `random` set, a run's
data order, its augmentation) gets its own seed from a stable hash of what it is
for. Streams therefore never overlap by accident, and adding a round or a method
does not shift the randomness of any other stream.
"""

from __future__ import annotations

import hashlib

_SEED_BITS = 31  # numpy's legacy seeding and many tools accept at most 2**32 - 1


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from the parts' text (same on every machine and Python)."""
    text = "\x1f".join(str(p) for p in parts)
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**_SEED_BITS)


def round_seeds(base_seed: int, num_eval: int) -> list[int]:
    """Round i runs with seed base_seed + i: readable in paths and results, and adding
    a round adds exactly one new seed."""
    return [base_seed + i for i in range(num_eval)]


def rdm_subset_seed(dataset: str, ipc: int, round_seed: int) -> int:
    return derive_seed("rdm-subset", dataset, ipc, round_seed)


def reference_set_seed(kind: str, dataset: str, ipc: int, base_seed: int) -> int:
    # A stream of its own, so the `random` reference set is never one of the rdm-k subsets.
    return derive_seed("reference-set", kind, dataset, ipc, base_seed)
