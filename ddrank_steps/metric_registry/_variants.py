"""The variants of a protocol that metrics train besides the protocol itself: without
training augmentation, and with hard labels. Each returns a new protocol dict (as a
config gives it); the planner turns it into a run protocol like any other."""

from __future__ import annotations

import copy


def without_augmentation(protocol: dict) -> dict:
    """The protocol without training augmentation: no batch augmentation and no
    train_transforms (the reference's no-aug runs read folders with its default
    transform). The test_transforms stay: every term of a score is tested alike."""
    plain = copy.deepcopy(protocol)
    plain["augmentation"], plain["aug_params"] = "none", {}
    plain["train_transforms"] = None
    return plain


def without_batch_augmentation(protocol: dict) -> dict:
    """The protocol without its batch augmentation (DSA, Mixup, Cutmix); its
    train_transforms stay, as the reference keeps `custom_train_trans` when
    `use_aug_for_hard` is off."""
    plain = copy.deepcopy(protocol)
    plain["augmentation"], plain["aug_params"] = "none", {}
    return plain


def hard_version(protocol: dict, keep_augmentation: bool) -> dict:
    """The protocol with hard labels (the syn-hard term of LRS-soft, ARS with hard labels);
    without `keep_augmentation`, the batch augmentation goes and the transforms stay."""
    hard = copy.deepcopy(protocol) if keep_augmentation else without_batch_augmentation(protocol)
    hard["labels"] = "hard"
    return hard


def naug_version(protocol: dict) -> dict:
    """ARS's "naug" arm: no training augmentation, everything else the same."""
    return without_augmentation(protocol)
