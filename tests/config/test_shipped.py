"""Every shipped config group option composes (new group files are picked up on their own)."""

from __future__ import annotations

import pytest

from audioflow.config import ConfigError, compose
from audioflow.config.composition import NON_GROUP_DIRS
from audioflow.config.teams import BUILTIN_CONFIG_DIR


def shipped_options() -> list[tuple[str, str]]:
    """(group, option) for every YAML file under a config group folder."""
    found = []
    for path in sorted(BUILTIN_CONFIG_DIR.rglob("*.yaml")):
        rel = path.relative_to(BUILTIN_CONFIG_DIR)
        if len(rel.parts) >= 2 and rel.parts[0] not in NON_GROUP_DIRS:
            found.append((rel.parts[0], "/".join(rel.parts[1:])[: -len(".yaml")]))
    return found


def test_there_are_shipped_options():
    groups = {group for group, _ in shipped_options()}
    assert {"solver", "dset", "conditioner"} <= groups


def test_defaults_compose():
    cfg = compose([])
    assert cfg.solver and cfg.optim.epochs >= 1


@pytest.mark.parametrize(("group", "option"), shipped_options(), ids=lambda v: str(v))
def test_option_composes(group, option):
    try:
        cfg = compose([f"{group}={option}"])
    except ConfigError as exc:
        if "No match in the defaults list" not in str(exc):
            raise
        # A group that no default selects (e.g. model under another solver) is added.
        cfg = compose([f"+{group}={option}"])
    assert "optim" in cfg and "xp" in cfg


def test_shipped_yaml_files_start_with_a_comment():
    for path in sorted(BUILTIN_CONFIG_DIR.rglob("*.yaml")):
        first = path.read_text().lstrip().splitlines()[0]
        assert first.startswith("#"), f"{path} must start with a comment saying what it is for"
