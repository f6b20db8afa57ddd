"""Where pretrained weights live in the local caches; nothing here downloads.

`model_options: {pretrained: …}` of a `torchvision:`/bare torchvision or `timm:` model
names weights that must already be on this machine, in the cache the library itself fills:

- torchvision, and timm weights that timm fetches by URL: the torch hub folder,
  `$TORCH_HOME/hub/checkpoints/<file name of the weights' URL>` (`torch.hub.get_dir()`;
  TORCH_HOME defaults to `~/.cache/torch`);
- timm weights hosted on the Hugging Face hub (most of them): the hub cache
  (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), in the hub's
  layout `models--<org>--<repo>/snapshots/<revision>/<file>`.

Training jobs often run where there is no network (compute nodes), and a download in the
middle of a cached DAG would make a result depend on what a server served that day; so a
missing file is a ConfigError that names the path and the one command that fills the
cache on a machine with a network (with the same TORCH_HOME / HF_HOME).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from ddrank_steps.errors import ConfigError


def torch_hub_checkpoint(url: str) -> Path:
    """The file torch.hub caches `url` as (read at call time: TORCH_HOME may change)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, from the environment at call time (the
    huggingface_hub package reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "huggingface" / "hub"


def hf_cached_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of `filenames` cached for the main revision of hub repo `repo_id`."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_hub_cache())
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def hf_expected_path(repo_id: str, filename: str) -> Path:
    """Where the hub cache keeps `filename` of `repo_id` (for error messages)."""
    folder = "models--" + repo_id.replace("/", "--")
    return hf_hub_cache() / folder / "snapshots" / "<revision>" / filename


def missing_weights(where: str, what: str, expected: Path, fill_command: str) -> ConfigError:
    return ConfigError(
        f"{where}: {what} are not in the local cache: expected {expected}. ddrank never "
        f"downloads weights; on a machine with a network and the same cache settings run "
        f"`{fill_command}` (or copy the file to that path), then run again"
    )
