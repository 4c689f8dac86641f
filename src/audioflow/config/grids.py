"""The XPs a workflow config declares: named override sets and grid files, expanded like
`dora grid`; and the workflow config itself, merged as Snakemake merges it.

A grid file (``config/grids/<name>.yaml``) holds a ``base`` list of overrides shared by
every XP and a ``grid`` list whose items are either a ``product`` (key -> list of values,
the cartesian product of all keys) or ``overrides`` (explicit override lists). Every
expanded XP is ``base + item``; XPs are named ``<grid name>-<index>`` in file order.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Names end up in paths (reference/<name>) and Snakemake wildcards: keep them plain.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class GridError(ValueError):
    """A malformed XP list or grid file; the message names the file, key and fix."""


@dataclass(frozen=True)
class XPSpec:
    """One XP as the user declared it.

    Args:
        name: unique name in the workflow config (used by ``publish``).
        overrides: Hydra override strings, e.g. ``["solver=compression/debug", "seed=1"]``.
    """

    name: str
    overrides: tuple[str, ...]


def format_value(value: Any) -> str:
    """Write a YAML value in the Hydra override grammar (``1e-4``, ``[1,2]``, ``null``).

    Args:
        value: a scalar, list or dict read from a grid file.

    Returns:
        The right-hand side of ``key=value``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _override_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GridError(
            f"{where}: expected a list of override strings like ['seed=1'], got {value!r}"
        )
    return tuple(value)


def expand_grid(data: dict, name: str, where: str) -> list[XPSpec]:
    """Expand the content of one grid file into XPs.

    Args:
        data: the parsed YAML mapping (keys ``base`` and ``grid``).
        name: the grid's name, prefix of the XP names.
        where: file name used in error messages.

    Returns:
        The XPs in file order, product items varying their last key fastest.

    Raises:
        GridError: unknown keys, a product value that is not a list, an empty grid.
    """
    if not isinstance(data, dict):
        raise GridError(f"{where}: expected a mapping with `base` and `grid`")
    unknown = set(data) - {"base", "grid"}
    if unknown:
        raise GridError(f"{where}: unknown key(s) {sorted(unknown)}; use `base` and `grid`")
    base = _override_list(data.get("base"), f"{where}: base")
    items = data.get("grid") or []
    if not isinstance(items, list) or not items:
        raise GridError(f"{where}: `grid` must be a non-empty list of product/overrides items")
    sets: list[tuple[str, ...]] = []
    for i, item in enumerate(items):
        at = f"{where}: grid[{i}]"
        if (
            not isinstance(item, dict)
            or len(item) != 1
            or next(iter(item))
            not in (
                "product",
                "overrides",
            )
        ):
            raise GridError(
                f"{at}: each item is {{product: {{key: [values]}}}} or {{overrides: [...]}}"
            )
        kind, body = next(iter(item.items()))
        if kind == "overrides":
            if not isinstance(body, list) or not body:
                raise GridError(f"{at}.overrides: expected a list of override lists")
            sets += [_override_list(o, f"{at}.overrides") for o in body]
            continue
        if not isinstance(body, dict) or not body:
            raise GridError(f"{at}.product: expected a mapping key -> list of values")
        for key, values in body.items():
            if not isinstance(values, list) or not values:
                raise GridError(f"{at}.product.{key}: expected a non-empty list of values")
        keys = list(body)
        for combo in itertools.product(*(body[k] for k in keys)):
            sets.append(tuple(f"{k}={format_value(v)}" for k, v in zip(keys, combo)))
    return [XPSpec(f"{name}-{i}", base + extra) for i, extra in enumerate(sets)]


def load_grid(path: Path) -> list[XPSpec]:
    """Read and expand one grid file (see the module docstring for the format).

    Raises:
        GridError: missing or malformed file.
    """
    if not path.is_file():
        raise GridError(f"grid file {path} does not exist: check `grids` in the workflow config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GridError(f"grid file {path}: not valid YAML ({exc})") from exc
    return expand_grid(data, path.stem, str(path))


def xp_specs(xps: list, grids: list[str], base_dir: Path) -> list[XPSpec]:
    """All XPs of a workflow config: the named override sets, then every grid's XPs.

    Args:
        xps: items ``{name: str, overrides: [str]}`` from the workflow config.
        grids: grid file paths, relative to ``base_dir`` unless absolute.
        base_dir: folder relative grid paths are read from (the working directory).

    Returns:
        The XPs in declaration order.

    Raises:
        GridError: a bad name, a duplicated name, or a bad grid file.
    """
    specs = []
    for i, item in enumerate(xps):
        where = f"workflow config: xps[{i}]"
        if not isinstance(item, dict) or "name" not in item:
            raise GridError(f"{where}: expected {{name: NAME, overrides: [...]}}")
        specs.append(XPSpec(str(item["name"]), _override_list(item.get("overrides"), where)))
    for grid in grids:
        path = Path(grid)
        specs += load_grid(path if path.is_absolute() else base_dir / path)
    seen: set[str] = set()
    for spec in specs:
        if not NAME_RE.match(spec.name):
            raise GridError(f"XP name {spec.name!r}: use letters, digits, '_', '.', '-' only")
        if spec.name in seen:
            raise GridError(f"XP name {spec.name!r} is declared twice: names must be unique")
        seen.add(spec.name)
    return specs


def load_workflow_config(paths: list[Path]) -> dict:
    """Merge workflow config files the way Snakemake's ``--configfile`` does (top keys)."""
    config: dict = {}
    for path in paths:
        data = yaml.safe_load(path.read_text()) or {}
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
    return config


def apply_config_values(config: dict, items: list[str]) -> dict:
    """Snakemake's ``--config KEY=VALUE``: each value (YAML) replaces the top-level key.

    Raises:
        ValueError: an item is not ``KEY=VALUE``.
    """
    config = dict(config)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--config {item}: write KEY=VALUE, e.g. 'grids=[\"g.yaml\"]'")
        config[key] = yaml.safe_load(value)
    return config
