"""Compose an XP's config from config groups and overrides, validating every override first.

Composition is Hydra's: ``config/config.yaml`` plus its defaults list, with Hydra's
override grammar (``solver=compression/debug optim.lr=1e-4 +label=x ~key``). A user folder
given as ``config_dir`` is searched before the built-in ``config/`` folder.

Composing is split in two, as Hydra itself does it: the group choices select files (the
slow part, ~80 ms), then leaf overrides are applied to the merged result. The first part is
cached per distinct set of group choices, so planning hundreds of XPs that differ only in
leaf values costs one Hydra compose per group-choice set.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError
from .teams import BUILTIN_CONFIG_DIR
from .validate import check_group_override, check_leaf_override
from .values import check_values

PRIMARY_CONFIG = "config"
# Folders of config/ that hold files for other tools, not Hydra config groups.
NON_GROUP_DIRS = frozenset({"teams", "grids"})


@dataclass
class Composed:
    """A composed config and what its signature needs.

    Attributes:
        cfg: the final config (a fresh copy the caller may change).
        base: the config composed with the group choices alone (shared: do not change it).
        groups: the group choices as given, ``[(group, option), ...]``.
    """

    cfg: DictConfig
    base: DictConfig
    groups: list[tuple[str, Any]]


def search_dirs(config_dir: str | os.PathLike | None = None) -> list[Path]:
    """The config folders searched, first match wins: the user's, then the built-in one.

    Raises:
        ConfigError: ``config_dir`` is not a directory.
    """
    dirs = []
    if config_dir is not None:
        user = Path(config_dir).expanduser().absolute()
        if not user.is_dir():
            raise ConfigError(f"--config-dir {config_dir}: not a directory; give a config folder")
        if user.resolve() != BUILTIN_CONFIG_DIR:
            dirs.append(user)
    dirs.append(BUILTIN_CONFIG_DIR)
    return dirs


def group_options(dirs: list[Path]) -> dict[str, list[str]]:
    """Every config group and its options, e.g. ``{"solver": ["compression/debug", ...]}``.

    An option is any YAML file under the group folder, nested folders included, named by
    its path relative to the group (Hydra accepts ``solver=compression/debug``).
    """
    groups: dict[str, set[str]] = {}
    for root in dirs:
        for path in root.rglob("*.yaml"):
            rel = path.relative_to(root)
            if len(rel.parts) < 2 or rel.parts[0] in NON_GROUP_DIRS:
                continue
            # Every folder on the way is a group in Hydra's eyes (solver, solver/compression).
            for depth in range(1, len(rel.parts)):
                group = "/".join(rel.parts[:depth])
                option = "/".join(rel.parts[depth:])[: -len(".yaml")]
                groups.setdefault(group, set()).add(option)
    return {group: sorted(options) for group, options in groups.items()}


def fingerprint(dirs: list[Path]) -> tuple:
    """Names, sizes and modification times of every YAML file: a cache key that changes
    whenever a config file does (so editing a default is seen by the same process)."""
    items = []
    for root in dirs:
        for path in sorted(root.rglob("*.yaml")):
            st = path.stat()
            items.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(items)


def parse_overrides(overrides: Iterable[str]) -> tuple[list, list[str]]:
    """Parse override strings with Hydra's grammar.

    Returns:
        The parsed ``Override`` objects (those that parsed) and one problem line per
        override that did not.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parsed, problems = [], []
    for text in overrides:
        # Parsing costs ~1 ms per override and grids repeat the same ones: keep them.
        ov = _PARSE_CACHE.get(text)
        if ov is None:
            try:
                (ov,) = OverridesParser.create().parse_overrides([text])
            except OverrideParseException as exc:
                problems.append(
                    f"override {text!r}: cannot parse ({_parse_reason(exc)}); write KEY=VALUE"
                )
                continue
            if len(_PARSE_CACHE) > 4096:
                _PARSE_CACHE.clear()
            _PARSE_CACHE[text] = ov
        parsed.append(ov)
    return parsed, problems


_PARSE_CACHE: dict[str, Any] = {}


def _parse_reason(exc: BaseException) -> str:
    # Hydra's message spans several lines: a header, the reason, a caret, a doc link.
    lines = [line.strip() for line in str(exc).splitlines()]
    keep = [
        line
        for line in lines
        if line and line != "^" and not line.startswith(("See ", "Error parsing override"))
    ]
    return " ".join(keep) or "syntax error"


def _hydra_compose(dirs: list[Path], overrides: list[str]) -> DictConfig:
    """One plain Hydra compose over ``dirs`` (the reference semantics, and the slow part).

    Mirrors ``hydra.initialize_config_dir`` but puts every folder of ``dirs`` on the search
    path, in order, so that a user folder may hold its own ``config.yaml`` or only a few
    group files beside the built-in ones (``hydra.searchpath`` cannot do the latter: the
    primary config is looked up before it applies).
    """
    from hydra import compose as hydra_compose
    from hydra import version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    try:
        version.setbase(None)
        csp = create_config_search_path(f"file://{dirs[0]}")
        for extra in reversed(dirs[1:]):
            csp.append("audioflow", f"file://{extra}", anchor=SearchPathQuery(provider="main"))
        Hydra.create_main_hydra2(task_name="audioflow", config_search_path=csp)
        return hydra_compose(config_name=PRIMARY_CONFIG, overrides=list(overrides))
    finally:
        restore_gh_from_backup(backup)


def _one_line(exc: BaseException) -> str:
    text = str(exc).split("Config search path:")[0]  # the rest lists Hydra's internals
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])
    return "; ".join(lines) or exc.__class__.__name__


_BASE_CACHE: dict[tuple, DictConfig] = {}


def compose_base(dirs: list[Path], group_texts: list[str], stamp: tuple | None = None):
    """The config composed with the group overrides alone, cached.

    Args:
        dirs: config folders (from :func:`search_dirs`).
        group_texts: group override strings such as ``solver=compression/debug``.
        stamp: :func:`fingerprint` of ``dirs`` when the caller already has it.

    Returns:
        The shared cached config: copy it before changing it.

    Raises:
        ConfigError: Hydra could not compose (a broken YAML file, a group clash).
    """
    stamp = fingerprint(dirs) if stamp is None else stamp
    key = (tuple(map(str, dirs)), stamp, tuple(sorted(group_texts)))
    cached = _BASE_CACHE.get(key)
    if cached is None:
        try:
            cached = _hydra_compose(dirs, sorted(group_texts))
        except Exception as exc:  # Hydra raises several unrelated types; all mean "bad config".
            choice = " ".join(sorted(group_texts)) or "the defaults"
            raise ConfigError(f"composing {choice} failed: {_one_line(exc)}") from exc
        if len(_BASE_CACHE) > 256:
            _BASE_CACHE.clear()
        _BASE_CACHE[key] = cached
    return cached


@dataclass
class Validated:
    """Overrides checked against the config they apply to (see :func:`validate_overrides`).

    Attributes:
        group_ovs, leaf_ovs: the parsed group and key overrides.
        base: the shared cached config of the group choices (do not change it).
        groups: the group choices as given, ``[(group, option), ...]``.
    """

    group_ovs: list
    leaf_ovs: list
    base: DictConfig
    groups: list[tuple[str, Any]]


_OPTIONS_CACHE: dict[tuple, dict[str, list[str]]] = {}


def validate_overrides(overrides: Iterable[str], dirs: list[Path], stamp: tuple) -> Validated:
    """Parse and check every override, composing (cached) the group choices.

    Raises:
        ConfigError: every problem found, one line each.
    """
    overrides = [str(o) for o in overrides]
    parsed, problems = parse_overrides(overrides)
    options_key = (tuple(map(str, dirs)), stamp)
    options = _OPTIONS_CACHE.get(options_key)
    if options is None:
        options = _OPTIONS_CACHE[options_key] = group_options(dirs)

    group_ovs, leaf_ovs = [], []
    for ov in parsed:
        (group_ovs if ov.key_or_group in options else leaf_ovs).append(ov)
    for ov in group_ovs:
        problems += check_group_override(ov, options)
    good_groups = [ov.input_line for ov in group_ovs if not check_group_override(ov, options)]

    try:
        base = compose_base(dirs, good_groups, stamp)
    except ConfigError as exc:
        problems += exc.problems
        # Still check the keys, against the defaults, so that all problems come at once.
        try:
            base = compose_base(dirs, [], stamp)
        except ConfigError:
            base = None
    if base is not None:
        for ov in leaf_ovs:
            problems += check_leaf_override(ov, base, NON_GROUP_DIRS, options)
    if problems:
        raise ConfigError(problems)
    groups = [(ov.key_or_group, _plain(ov.value())) for ov in group_ovs]
    return Validated(group_ovs, leaf_ovs, base, groups)


def compose_parts(
    overrides: Iterable[str],
    config_dir: str | os.PathLike | None = None,
    *,
    dirs: list[Path] | None = None,
    stamp: tuple | None = None,
) -> Composed:
    """Validate and compose; see :func:`compose`. Also returns the group-only base config.

    Args:
        overrides: override strings.
        config_dir: optional user config folder searched first.
        dirs, stamp: precomputed :func:`search_dirs` / :func:`fingerprint` (batch callers).

    Raises:
        ConfigError: every problem found, one line each.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    dirs = search_dirs(config_dir) if dirs is None else dirs
    stamp = fingerprint(dirs) if stamp is None else stamp
    checked = validate_overrides(overrides, dirs, stamp)
    cfg = copy.deepcopy(checked.base)
    try:
        # Exactly what Hydra's compose does after merging the defaults list.
        ConfigLoaderImpl._apply_overrides_to_config(checked.leaf_ovs, cfg)
    except Exception as exc:
        raise ConfigError(f"applying overrides failed: {_one_line(exc)}") from exc
    problems = check_values(cfg)
    if problems:
        raise ConfigError(problems)
    return Composed(cfg=cfg, base=checked.base, groups=checked.groups)


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=False)
    return value


def compose(overrides: Iterable[str] = (), config_dir: str | os.PathLike | None = None):
    """Compose and validate the config of an XP.

    Args:
        overrides: Hydra override strings, e.g. ``["solver=compression/debug", "optim.lr=1e-4"]``.
        config_dir: a user config folder searched before the built-in ``config/``.

    Returns:
        The composed ``DictConfig`` (struct mode: new keys need ``+key=value``).

    Raises:
        ConfigError: unknown keys, wrong types, missing group options, syntax errors; every
            problem of the list is reported together, one line each.
    """
    return compose_parts(overrides, config_dir).cfg


def compose_slow(overrides: Iterable[str], config_dir: str | os.PathLike | None = None):
    """A plain Hydra compose of every override at once, without validation or cache.

    The reference that the cached path is tested against; not for everyday use.
    """
    return _hydra_compose(search_dirs(config_dir), [str(o) for o in overrides])
