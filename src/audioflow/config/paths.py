"""Resolve user paths: ``//reference/...`` and the team's dataset path mappings."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError
from .teams import cluster_config

REFERENCE_PREFIX = "//reference"
#: ``//sig/SIG``: an XP of the current XP root, by signature (e.g. ``load_codec("//sig/SIG")``)
SIG_PREFIX = "//sig/"


def resolve_path(path: str) -> Path:
    """Map a path from a config or the command line to where it lives on this cluster.

    ``//reference/NAME`` becomes ``<reference_dir>/NAME``; then every regex of the
    cluster's ``dataset_mappings`` is applied in order (``re.sub``), so that
    ``data/...`` can point to a shared volume on a cluster and stay local elsewhere.

    Args:
        path: the path as written by the user.

    Returns:
        The resolved path (relative paths stay relative to the working directory).

    Raises:
        ConfigError: a ``//reference`` path while the reference dir does not exist.
    """
    text = str(path)
    entry = cluster_config()
    if text == REFERENCE_PREFIX or text.startswith(REFERENCE_PREFIX + "/"):
        ref_dir = entry["reference_dir"]
        if not ref_dir.is_dir():
            raise ConfigError(
                f"{text}: reference dir {ref_dir} (team {entry['team']}, cluster "
                f"{entry['cluster']}) does not exist; create it, set AUDIOFLOW_REFERENCE_DIR "
                f"or reference_dir in {entry['team_file']}"
            )
        rest = text[len(REFERENCE_PREFIX) :].lstrip("/")
        text = str(ref_dir / rest) if rest else str(ref_dir)
    for pattern, replacement in entry["dataset_mappings"].items():
        try:
            text = re.sub(pattern, replacement, text)
        except re.error as exc:
            raise ConfigError(
                f"dataset_mappings pattern {pattern!r} in {entry['team_file']}: {exc}"
            ) from exc
    return Path(text)
