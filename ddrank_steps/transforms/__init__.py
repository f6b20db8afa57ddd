"""A protocol's `train_transforms` / `test_transforms` lists, in three steps:

- `build`: the reference's list format (`- name: RandomCrop`, `args: {…}`) to torchvision
  v2 items, with the errors that name the bad item;
- `batches`: a built list applied where training sees images (normalised tensors on the
  device), per image for train lists, once per split for test lists;
- `vectorised`: how `batches` runs each item: deterministic ones on the whole batch,
  flips and RandomCrop batched with per-image draws, the rest image by image.
"""
