"""XP signatures with Dora's semantics.

The signature of an override list is built from its *delta*: every group choice as given
(it counts even when it equals the default, as in Dora), plus every key whose value in the
final config differs from the config composed with the group choices alone (``+key``
additions included, deleted keys as ``~key``). Keys matching an fnmatch pattern of
``xp.exclude`` are left out. The delta, sorted, is dumped as JSON with sorted keys and
hashed with sha1; the signature is the first 8 hex characters.

Sorting the delta makes the order of the overrides irrelevant (Dora keeps argv order).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .composition import compose_parts, fingerprint, search_dirs, validate_overrides
from .values import plain_values_need_compose

SIG_LENGTH = 8


def flatten(container: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values of a plain container by dotted key; lists and empty dicts are leaves."""
    if isinstance(container, dict) and container:
        flat: dict[str, Any] = {}
        for key, value in container.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: container}


def plain(cfg: DictConfig, resolve: bool = False) -> dict:
    """``cfg`` as plain dicts/lists; ``???`` values stay the string ``???``."""
    return OmegaConf.to_container(cfg, resolve=resolve, throw_on_missing=False)


def is_excluded(key: str, patterns: Iterable[str]) -> bool:
    """Whether a dotted key (``~key`` for a deletion) matches one of the fnmatch patterns."""
    bare = key.lstrip("~")
    return any(fnmatch.fnmatchcase(bare, pattern) for pattern in patterns)


def exclude_patterns(cfg: DictConfig | dict) -> list[str]:
    """The ``xp.exclude`` patterns of a config or plain dict (none when the key is absent)."""
    if isinstance(cfg, DictConfig):
        patterns = OmegaConf.select(cfg, "xp.exclude", default=None)
    else:
        patterns = (cfg.get("xp") or {}).get("exclude") if isinstance(cfg.get("xp"), dict) else None
    return [str(p) for p in patterns] if patterns is not None else []


def diff_flat(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for every dotted key that differs between two flat configs.

    A key missing on one side shows as ``"<absent>"`` there.
    """
    changes = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key, _ABSENT) == new.get(key, _ABSENT):
            continue
        changes[key] = (old.get(key, ABSENT), new.get(key, ABSENT))
    return changes


_ABSENT = object()
ABSENT = "<absent>"


def compute_delta(
    groups: list[tuple[str, Any]], base: DictConfig, cfg: DictConfig
) -> list[tuple[str, Any]]:
    """The (key, value) pairs that identify an XP, sorted, excluded keys left out.

    Args:
        groups: the group choices as given.
        base: the config composed with the group choices alone.
        cfg: the final config.
    """
    return delta_from_plain(groups, flatten(plain(base)), plain(cfg))


def delta_from_plain(
    groups: list[tuple[str, Any]], flat_base: dict[str, Any], final: dict
) -> list[tuple[str, Any]]:
    """:func:`compute_delta` on plain data: the flattened base and the final config."""
    patterns = exclude_patterns(final)
    flat_cfg = flatten(final)
    delta = list(groups)
    for key, value in flat_cfg.items():
        if flat_base.get(key, _ABSENT) != value:
            delta.append((key, value))
    for key in flat_base:
        # A key only counts as deleted when no part of it is left (not when it was
        # replaced by a section, e.g. `optim_sches: null` -> `+optim_sches.gen...`).
        if key not in flat_cfg and not any(k.startswith(key + ".") for k in flat_cfg):
            delta.append(("~" + key, None))
    delta = [(k, v) for k, v in delta if not is_excluded(k, patterns)]
    return sorted(delta, key=lambda kv: (kv[0], json.dumps(kv[1], sort_keys=True)))


def sign(delta: list[tuple[str, Any]]) -> str:
    """The signature of a delta: sha1 of its sorted JSON, first 8 hex characters."""
    text = json.dumps([list(kv) for kv in delta], sort_keys=True)
    return hashlib.sha1(text.encode("utf8")).hexdigest()[:SIG_LENGTH]


def signature(overrides: Iterable[str] = (), config_dir: str | os.PathLike | None = None) -> str:
    """The signature of the XP defined by ``overrides``: :func:`signatures` of one list.

    Raises:
        ConfigError: the overrides do not compose (see :func:`audioflow.config.compose`).
    """
    return signatures([overrides], config_dir)[0]


_SIG_CACHE: dict[tuple, tuple[str, list]] = {}
_PLAIN_BASE: dict[int, tuple[DictConfig, dict, dict]] = {}


def _base_plain(base: DictConfig) -> tuple[dict, dict]:
    """The plain and flattened forms of a cached base config, computed once per base."""
    hit = _PLAIN_BASE.get(id(base))
    if hit is None or hit[0] is not base:
        data = plain(base)
        if len(_PLAIN_BASE) > 256:
            _PLAIN_BASE.clear()
        hit = _PLAIN_BASE[id(base)] = (base, data, flatten(data))
    return hit[1], hit[2]


def apply_simple(data: dict, leaf_ovs: list) -> bool:
    """Apply key overrides to plain data in place, where that gives exactly what OmegaConf
    gives: a scalar or list set on an existing parent section, not over a section.

    Returns:
        False as soon as one override needs OmegaConf's own semantics (a dict value that
        merges, a deletion, a list index, a missing parent); ``data`` is then unusable.
    """
    for ov in leaf_ovs:
        value = ov.value()
        if ov.is_delete() or isinstance(value, dict):
            return False
        *parents, last = ov.key_or_group.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or isinstance(node.get(last), dict):
            return False
        node[last] = copy.deepcopy(value) if isinstance(value, list) else value
    return True


def signed_delta(
    overrides: Iterable[str],
    config_dir: str | os.PathLike | None = None,
    *,
    dirs: list | None = None,
    stamp: tuple | None = None,
) -> tuple[str, list[tuple[str, Any]]]:
    """The signature of an override list and the delta it hashes: the one computation
    behind :func:`signature`, :func:`signatures`, XP folders and the workflow's plans.

    Simple key overrides are applied to plain data instead of a config object (copying an
    OmegaConf config costs ~10 ms; a plain dict ~0.1 ms); anything else, or a value the
    range checks refuse or cannot see through an interpolation, is composed by Hydra (so
    errors are the composer's). Results are cached for the life of the process, keyed by
    the config files' fingerprint so that an edited default is seen.

    Args:
        overrides: override strings.
        config_dir: a user config folder searched before the built-in one.
        dirs, stamp: precomputed ``search_dirs`` / ``fingerprint`` (batch callers).

    Returns:
        ``(sig, delta)``; the delta is the sorted (key, value) list stored in delta.json.

    Raises:
        ConfigError: the overrides do not compose, or a value is out of range.
    """
    dirs = search_dirs(config_dir) if dirs is None else dirs
    stamp = fingerprint(dirs) if stamp is None else stamp
    overrides = [str(o) for o in overrides]
    key = (tuple(map(str, dirs)), stamp, tuple(overrides))
    hit = _SIG_CACHE.get(key)
    if hit is None:
        checked = validate_overrides(overrides, dirs, stamp)
        base_data, flat_base = _base_plain(checked.base)
        final = copy.deepcopy(base_data)
        if apply_simple(final, checked.leaf_ovs) and not plain_values_need_compose(final):
            delta = delta_from_plain(checked.groups, flat_base, final)
        else:
            parts = compose_parts(overrides, dirs=dirs, stamp=stamp)
            delta = compute_delta(parts.groups, parts.base, parts.cfg)
        if len(_SIG_CACHE) > 65536:
            _SIG_CACHE.clear()
        hit = _SIG_CACHE[key] = (sign(delta), delta)
    return hit[0], list(hit[1])


def signatures(
    override_lists: Iterable[Iterable[str]], config_dir: str | os.PathLike | None = None
) -> list[str]:
    """Signatures of many XPs at once, for planning (the workflow, grids).

    The config folders are scanned once, Hydra composes once per distinct set of group
    choices and parsed overrides are reused (see :func:`signed_delta`).

    Raises:
        ConfigError: the first override list that does not compose.
    """
    dirs = search_dirs(config_dir)
    stamp = fingerprint(dirs)
    return [signed_delta(overrides, dirs=dirs, stamp=stamp)[0] for overrides in override_lists]
