"""Reading an augmentation's params dict in either spelling (ours or the reference's)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ddrank_steps.errors import ConfigError


def resolve_spellings(
    kind: str,
    params: Mapping[str, object],
    aliases: Mapping[str, str],
    canonical: Collection[str],
    valid: list[str],
) -> tuple[dict[str, object], dict[str, str]]:
    """(value by canonical name, the key the user wrote for it). Unknown keys, and two
    spellings of one setting with different values, are ConfigErrors naming the keys."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{kind} params must be a mapping of key -> value, got {params!r}")
    resolved: dict[str, object] = {}
    given_as: dict[str, str] = {}
    for key, value in params.items():
        name = aliases.get(key, key)
        if name not in canonical:
            raise ConfigError(f"{kind} param '{key}' is unknown; valid keys: {', '.join(valid)}")
        if name in resolved and resolved[name] != value:
            raise ConfigError(
                f"{kind} param '{key}' = {value!r} conflicts with '{given_as[name]}' = "
                f"{resolved[name]!r} (two spellings of one setting); keep one of them"
            )
        resolved[name] = value
        given_as[name] = key
    return resolved, given_as
