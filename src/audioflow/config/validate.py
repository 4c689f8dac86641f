"""Check each override against the config it applies to, before anything is composed.

Every check returns a list of problem lines (empty when fine) so that the caller can
report all the problems of an override list at once. A line names the override, what is
wrong and what to type instead (the closest valid names first, found with difflib).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

_NOT_FOUND = object()
_ANY = object()  # the default does not constrain the type (null, ???, an interpolation)
MAX_LISTED = 12


def by_closeness(word: str, candidates: Iterable[str]) -> list[str]:
    """``candidates`` sorted from the most to the least similar to ``word``."""
    return sorted(candidates, key=lambda c: (-difflib.SequenceMatcher(None, word, c).ratio(), c))


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" (+{more} more)" if more > 0 else "")


def check_group_override(ov, options: dict[str, list[str]]) -> list[str]:
    """Problems of a group override such as ``solver=compression/debug``.

    Args:
        ov: a parsed Hydra ``Override`` whose key is a config group.
        options: every group and its options (from ``group_options``).
    """
    group = ov.key_or_group
    if ov.is_sweep_override():
        return [f"{ov.input_line}: sweeps are not supported here; give one option of {group}"]
    if ov.is_delete():
        return []
    value = ov.value()
    wanted = value if isinstance(value, list) else [value]
    problems = []
    for option in wanted:
        if not isinstance(option, str) or option not in options[group]:
            closest = by_closeness(str(option), options[group])
            problems.append(
                f"{ov.input_line}: group '{group}' has no option '{option}'; "
                f"available: {_listed(closest)}"
            )
    return problems


def _node(cfg: DictConfig, key: str) -> Any:
    """The raw node at a dotted key (no interpolation resolved), or _NOT_FOUND."""
    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig):
            if node._is_none() or node._is_missing() or node._is_interpolation():
                return _NOT_FOUND
            node = node._get_node(part, validate_access=False)
            if node is None:
                return _NOT_FOUND
        elif isinstance(node, ListConfig):
            if not part.isdigit() or node._is_none() or int(part) >= len(node):
                return _NOT_FOUND
            node = node._get_node(int(part))
        else:
            return _NOT_FOUND
    return node


def _default_of(node: Any) -> Any:
    if node._is_none() or node._is_missing() or node._is_interpolation():
        return _ANY
    if isinstance(node, DictConfig | ListConfig):
        return node
    return node._value()


def all_keys(cfg: DictConfig) -> list[str]:
    """Every dotted key of a config, sections included (``optim``, ``optim.lr``, ...)."""
    keys: list[str] = []

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                key = f"{prefix}{k}"
                keys.append(key)
                walk(v, key + ".")

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return keys


def closest_keys(key: str, candidates: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` valid names close to ``key``: whole dotted names first, then names whose
    last part is close (``lrr`` finds ``optim.lr``)."""
    # A parent section of the key itself (``optim`` for ``optim.lrr``) is no suggestion.
    candidates = [c for c in candidates if not key.startswith(c + ".")]
    found = difflib.get_close_matches(key, candidates, n=n, cutoff=0.6)
    last = key.rsplit(".", 1)[-1]
    tails: dict[str, list[str]] = {}
    for cand in candidates:
        tails.setdefault(cand.rsplit(".", 1)[-1], []).append(cand)
    for tail in difflib.get_close_matches(last, list(tails), n=n, cutoff=0.75):
        found += [c for c in tails[tail] if c not in found]
    return found[:n]


def _type_problem(ov, key: str, default: Any, value: Any) -> str | None:
    if default is _ANY or value is None:
        return None
    if isinstance(value, str) and "${" in value:
        return None  # an interpolation: its type is known only once resolved
    if isinstance(default, DictConfig):
        if isinstance(value, dict):
            return None
        sub = ", ".join(list(default.keys())[:6])
        return (
            f"{ov.input_line}: {key} is a section (keys: {sub}); "
            f"set one of its keys, e.g. {key}.{next(iter(default.keys()), 'KEY')}=VALUE"
        )
    if isinstance(default, ListConfig):
        if isinstance(value, list):
            return None
        return f"{ov.input_line}: {key} expects a list, e.g. {key}=[a,b]; got {value!r}"
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, kind = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        # Numbers are fine where text is expected (a label "2024", a name "16k").
        ok, kind = not isinstance(value, dict | list), "a single value"
    else:
        return None
    if ok:
        return None
    return f"{ov.input_line}: {key} expects {kind} (default {default!r}), got {value!r}"


def check_leaf_override(
    ov, base: DictConfig, reserved: Iterable[str] = (), groups: Iterable[str] = ()
) -> list[str]:
    """Problems of a key override (``optim.lr=1e-4``, ``+label=x``, ``~key``).

    Args:
        ov: a parsed Hydra ``Override`` whose key is not a config group.
        base: the config composed with the group choices, which the override applies to.
        reserved: top-level config folders that are not groups (``teams``).
        groups: the config group names, suggested when a key is close to one.
    """
    key = ov.key_or_group
    if ov.is_sweep_override():
        return [f"{ov.input_line}: sweeps are not supported here; give one value of {key}"]
    if key.split(".")[0] in reserved:
        return [
            f"{ov.input_line}: '{key}' is not a config key; teams and clusters are chosen "
            "with AUDIOFLOW_TEAM / AUDIOFLOW_CLUSTER / AUDIOFLOW_CONFIG"
        ]
    if ov.package is not None:
        return [f"{ov.input_line}: '{key}' is not a config group; check the spelling"]
    node = _node(base, key)
    if ov.is_force_add():
        return []
    if ov.is_add():
        if node is _NOT_FOUND or node._is_none() or isinstance(ov.value(), dict | list):
            return []
        bare = ov.input_line[1:]
        return [f"{ov.input_line}: {key} already exists; write {bare} to change it"]
    if node is _NOT_FOUND:
        close = closest_keys(key, sorted(set(all_keys(base)) | set(groups)))
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        add = "" if ov.is_delete() else f"; to add a new key write +{ov.input_line}"
        return [f"{ov.input_line}: unknown key '{key}'{hint}{add}"]
    if ov.is_delete():
        return []
    problem = _type_problem(ov, key, _default_of(node), ov.value())
    return [problem] if problem else []
