"""Teams and clusters: where XPs, references and datasets live, and how jobs are scheduled.

``teams/<team>.yaml`` maps cluster names to entries; it is looked up in the user's config
folder (``--config-dir``, the workflow's ``config_dir``) first, then in the built-in
``config/``. The team comes from ``AUDIOFLOW_TEAM`` (default ``default``) or, for a file
anywhere, ``AUDIOFLOW_CONFIG`` (path of a team YAML). The cluster comes from ``AUDIOFLOW_CLUSTER``,
else it is detected (``kubernetes`` inside a pod, else ``local``). ``AUDIOFLOW_XP_DIR`` and
``AUDIOFLOW_REFERENCE_DIR`` override the entry's paths. None of this enters a signature.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

BUILTIN_CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
DEFAULT_TEAM = "default"

# Every key a consumer may read, with the value used when a team file leaves it out.
KUBERNETES_DEFAULTS: dict[str, Any] = {
    "namespace": "default",
    "image": None,
    "service_account": None,
    "pvc": None,
    "mount_path": None,
    "node_selector": {},
    "tolerations": [],
    "shm_size": None,
    "secret_env": [],
}
ENTRY_DEFAULTS: dict[str, Any] = {
    "xp_root": "outputs",
    "reference_dir": "reference",
    "dataset_mappings": {},
}


# The user config folder of this process (set once by a command given --config-dir), so
# that code deep inside a run (xp_root(), resolve_path()) finds the same team file.
_config_dir: Path | None = None


def use_config_dir(config_dir: str | os.PathLike | None) -> None:
    """Search ``<config_dir>/teams/`` before the built-in teams, for this whole process.

    Args:
        config_dir: the user config folder (``--config-dir``), or None for built-in only.
    """
    global _config_dir
    _config_dir = None if config_dir is None else Path(config_dir).expanduser().absolute()


def team_name() -> str:
    """The selected team: ``AUDIOFLOW_TEAM`` or ``default``."""
    return os.environ.get("AUDIOFLOW_TEAM") or DEFAULT_TEAM


def cluster_name() -> str:
    """The selected cluster: ``AUDIOFLOW_CLUSTER``, else ``kubernetes`` in a pod, else ``local``."""
    explicit = os.environ.get("AUDIOFLOW_CLUSTER")
    if explicit:
        return explicit
    # Kubernetes injects this variable into every container it starts.
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    return "local"


def _teams_dirs(config_dir: str | os.PathLike | None) -> list[Path]:
    chosen = _config_dir if config_dir is None else Path(config_dir).expanduser().absolute()
    dirs = [chosen / "teams"] if chosen is not None else []
    return [*dirs, BUILTIN_CONFIG_DIR / "teams"]


def team_file(config_dir: str | os.PathLike | None = None) -> Path:
    """The team YAML in use: ``AUDIOFLOW_CONFIG``, else ``teams/<team>.yaml`` in the user
    config folder, else in the built-in ``config/``.

    Args:
        config_dir: the user config folder; None: the one given to :func:`use_config_dir`.

    Raises:
        ConfigError: the file does not exist (the message lists the known teams).
    """
    explicit = os.environ.get("AUDIOFLOW_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"AUDIOFLOW_CONFIG={explicit}: no such team file; fix or unset it")
        return path
    team = team_name()
    dirs = _teams_dirs(config_dir)
    for folder in dirs:
        if (folder / f"{team}.yaml").is_file():
            return folder / f"{team}.yaml"
    known = sorted({p.stem for folder in dirs for p in folder.glob("*.yaml")})
    where = " or ".join(str(folder) for folder in dirs)
    raise ConfigError(
        f"AUDIOFLOW_TEAM={team}: no {team}.yaml in {where}; "
        f"known teams: {', '.join(known) or 'none'}"
    )


def _load_team(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}); fix it") from exc
    clusters = data.get("clusters") if isinstance(data, dict) else None
    if not isinstance(clusters, dict) or not clusters:
        raise ConfigError(f"{path}: needs a `clusters:` mapping of cluster name -> entry")
    for name, entry in clusters.items():
        _check_entry(path, name, entry)
    return clusters


# Keys of a cluster entry whose type the rest of the code relies on.
_ENTRY_TYPES = (
    ("kubernetes", dict, "a mapping"),
    ("dataset_mappings", dict, "a mapping"),
    ("xp_root", str, "a folder path"),
    ("reference_dir", str, "a folder path"),
)


def _check_entry(path: Path, name: Any, entry: Any) -> None:
    # The entries are merged into dicts of defaults: any other type would surface later as
    # a TypeError traceback far from the file that holds the mistake.
    if entry is not None and not isinstance(entry, dict):
        raise ConfigError(
            f"{path}: clusters.{name} must be a mapping of settings (xp_root: ..., "
            f"reference_dir: ...), not {type(entry).__name__}; fix it"
        )
    for key, kind, what in _ENTRY_TYPES:
        value = (entry or {}).get(key)
        if value is not None and not isinstance(value, kind):
            raise ConfigError(
                f"{path}: clusters.{name}.{key} must be {what}, not {type(value).__name__}; fix it"
            )


def _absolute(value: str | os.PathLike) -> Path:
    # Relative paths are relative to where the command runs, as users expect of a CLI.
    return Path(os.path.expanduser(os.fspath(value))).absolute()


def cluster_config(config_dir: str | os.PathLike | None = None) -> dict:
    """The selected team/cluster entry with environment overrides applied.

    Args:
        config_dir: the user config folder searched for the team file first; None: the
            one given to :func:`use_config_dir` (if any).

    Returns:
        A dict with ``xp_root`` and ``reference_dir`` (absolute Paths), ``dataset_mappings``
        (regex -> replacement, applied in order), ``kubernetes`` (namespace, image,
        service_account, pvc, mount_path, node_selector, tolerations, shm_size, secret_env),
        plus ``team``, ``cluster`` and ``team_file`` saying where it came from.

    Raises:
        ConfigError: missing team file, or the cluster is not in it.
    """
    path = team_file(config_dir)
    clusters = _load_team(path)
    cluster = cluster_name()
    if cluster not in clusters:
        raise ConfigError(
            f"cluster '{cluster}' is not in {path}; known: {', '.join(sorted(clusters))} "
            "(set AUDIOFLOW_CLUSTER or add an entry)"
        )
    entry = copy.deepcopy(ENTRY_DEFAULTS)
    entry.update(copy.deepcopy(clusters[cluster] or {}))
    kube = copy.deepcopy(KUBERNETES_DEFAULTS)
    kube.update(entry.get("kubernetes") or {})
    entry["kubernetes"] = kube
    entry["dataset_mappings"] = dict(entry.get("dataset_mappings") or {})
    entry["xp_root"] = _absolute(os.environ.get("AUDIOFLOW_XP_DIR") or entry["xp_root"])
    entry["reference_dir"] = _absolute(
        os.environ.get("AUDIOFLOW_REFERENCE_DIR") or entry["reference_dir"]
    )
    entry.update(team=team_name(), cluster=cluster, team_file=path)
    return entry


def xp_root() -> Path:
    """Root folder of the XPs (``<xp_root>/xps/<sig>/``) for the selected team/cluster."""
    return cluster_config()["xp_root"]
