"""XP folders: ``<xp_root>/xps/<sig>/`` with the overrides and the fully resolved config.

Unlike Dora, a folder is not silently reused when the config its overrides resolve to has
changed since it was created (a default or a group file was edited): the difference is
refused, key by key, unless accepted explicitly, and each acceptance is recorded in
``drift.json`` so the folder's history stays readable.

Files written here (each atomically: temp file, fsync, rename):
``overrides.json`` (list of override strings, first creator's order), ``config_dir.json``
(the user config folder it was composed with), ``delta.json``
(the signature's (key, value) pairs), ``config.yaml`` (the resolved config, written last),
``drift.json`` (accepted drifts: time, old and new values).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from audioflow import atomic

from . import layout
from .composition import compose_parts, fingerprint, search_dirs
from .errors import ConfigError, DriftError
from .layout import CONFIG_DIR_FILE, CONFIG_FILE, DELTA_FILE, DRIFT_FILE, MUTEX_FILE, OVERRIDES_FILE
from .signing import diff_flat, exclude_patterns, flatten, is_excluded, signed_delta
from .teams import cluster_config
from .xp import XP


def _dump_config(resolved: dict) -> str:
    return yaml.safe_dump(resolved, sort_keys=False, default_flow_style=False)


def _resolve(cfg) -> dict:
    """The config with every interpolation resolved, or ConfigError naming the bad keys."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception as exc:  # omegaconf raises several types for bad interpolations
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f" at {exc.full_key}" if getattr(exc, "full_key", None) else ""
        raise ConfigError(
            f"resolving the config failed{where}: {first}; fix the interpolation"
        ) from exc
    missing = [key for key, value in flatten(resolved).items() if value == "???"]
    if missing:
        raise ConfigError(
            f"{key} has no value (???); set it with {key}=VALUE or choose a group option "
            "that sets it"
            for key in missing
        )
    return resolved


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def drift_lines(sig: str, folder: Path, changes: dict[str, tuple[Any, Any]]) -> list[str]:
    """The refusal message: one line per differing key, then how to accept."""
    lines = [
        f"XP {sig}: the config now differs from {folder / CONFIG_FILE} "
        "(a default or a group file changed since the XP was created):"
    ]
    lines += [f"  {key}: {_show(old)} -> {_show(new)}" for key, (old, new) in changes.items()]
    lines.append(
        "to continue this XP with the new config, run again with --accept-drift "
        f"(accept_drift=True in Python; recorded in {folder / DRIFT_FILE}); "
        "otherwise restore the old default"
    )
    return lines


def _record_drift(folder: Path, changes: dict, overrides: list[str]) -> None:
    path = folder / DRIFT_FILE
    records = json.loads(path.read_text()) if path.exists() else []
    records.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "overrides": overrides,
            "old": {key: old for key, (old, _) in changes.items()},
            "new": {key: new for key, (_, new) in changes.items()},
        }
    )
    atomic.write_text(path, json.dumps(records, indent=2, default=str) + "\n")


@contextmanager
def _folder_mutex(folder: Path) -> Iterator[None]:
    """Serialise the check-and-write of the folder's config files between processes
    (every rank of a torchrun job opens the XP): a blocking flock held for milliseconds,
    on a file outside ``locks/`` so that it never shows as a running stage."""
    fd = os.open(folder / MUTEX_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _store(
    folder: Path,
    sig: str,
    overrides: list[str],
    delta: list,
    resolved: dict,
    patterns: list[str],
    accept_drift: bool,
    config_dir: Path | None = None,
) -> bool:
    """Create the folder's files, or check the stored config against ``resolved``.

    Returns:
        True when the folder's config was written now (a new XP).
    """
    config_path = folder / CONFIG_FILE
    text = _dump_config(resolved)
    if not config_path.exists():
        if not (folder / OVERRIDES_FILE).exists():
            atomic.write_text(folder / OVERRIDES_FILE, json.dumps(overrides, indent=2) + "\n")
            # With the overrides, what `audioflow run -f SIG` needs to compose it again.
            source = {"config_dir": None if config_dir is None else str(config_dir)}
            atomic.write_text(folder / CONFIG_DIR_FILE, json.dumps(source) + "\n")
        atomic.write_text(folder / DELTA_FILE, json.dumps([list(kv) for kv in delta]) + "\n")
        atomic.write_text(config_path, text)  # last: its presence means the folder is complete
        return True
    stored_text = config_path.read_text()
    try:
        stored = yaml.safe_load(stored_text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML; restore it or clear the XP") from exc
    changes = {
        key: change
        for key, change in diff_flat(flatten(stored), flatten(resolved)).items()
        if not is_excluded(key, patterns)
    }
    if changes and not accept_drift:
        raise DriftError(drift_lines(sig, folder, changes), changes)
    if changes:
        _record_drift(folder, changes, overrides)
    if text != stored_text:
        # Excluded keys (device, logging, ...) describe the latest run: keep them current.
        atomic.write_text(config_path, text)
    return False


def sig_mismatch(sig: str, expected: str) -> str:
    """The one-line refusal of a stage job whose overrides no longer sign as planned."""
    return (
        f"these overrides sign as {sig}, not {expected} (the signature this job was planned "
        "for): the config or audioflow changed since planning; plan again (rerun snakemake) "
        "or drop --expect-sig"
    )


def xp_folder(sig: str, config_dir: str | os.PathLike | None = None) -> Path:
    """``<xp_root>/xps/<sig>`` for the selected team/cluster (its team file looked up in
    ``config_dir`` first)."""
    return layout.xp_folder(cluster_config(config_dir)["xp_root"], sig)


def get_xp(
    overrides: Iterable[str] = (),
    config_dir: str | os.PathLike | None = None,
    accept_drift: bool = False,
    expect_sig: str | None = None,
) -> XP:
    """Compose, sign and create (or reopen) the folder of the XP defined by ``overrides``.

    Args:
        overrides: Hydra override strings.
        config_dir: a user config folder searched before the built-in one.
        accept_drift: continue an existing XP whose resolved config changed, recording
            the change in ``drift.json``.
        expect_sig: the signature the caller planned for (a workflow stage job); a
            different one is refused before anything is written.

    Returns:
        The XP (sig, overrides, composed cfg, folder, delta).

    Raises:
        ConfigError: bad overrides, keys left ``???``, bad interpolations, a signature
            other than ``expect_sig`` (nothing written).
        DriftError: the folder exists and its stored config differs (excluded keys aside).
    """
    overrides = [str(o) for o in overrides]
    dirs = search_dirs(config_dir)
    stamp = fingerprint(dirs)
    parts = compose_parts(overrides, dirs=dirs, stamp=stamp)
    sig, delta = signed_delta(overrides, dirs=dirs, stamp=stamp)
    if expect_sig is not None and sig != expect_sig:
        raise ConfigError(sig_mismatch(sig, expect_sig))
    resolved = _resolve(parts.cfg)
    folder = xp_folder(sig, config_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with _folder_mutex(folder):
        # What a writer killed mid-save (a node lost, kill -9) left: never a complete file.
        atomic.remove_stale_temps([folder, folder / layout.STAGES_DIR])
        user_dir = None if config_dir is None else Path(config_dir).expanduser().absolute()
        created = _store(
            folder,
            sig,
            overrides,
            delta,
            resolved,
            exclude_patterns(parts.cfg),
            accept_drift,
            user_dir,
        )
    return XP(
        sig=sig, overrides=overrides, cfg=parts.cfg, folder=folder, delta=delta, created=created
    )


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); restore or delete it") from exc


def xp_from_sig(sig: str) -> XP:
    """Open the existing XP folder of a signature, with its stored config.

    Args:
        sig: 8 hex characters (a trailing ``/``, as shell completion adds, is ignored).

    Raises:
        ConfigError: not a signature, or no XP folder with it under the current XP root.
    """
    sig = sig.rstrip("/")
    # A path or "../x" must never reach the folder name: clear would act outside the root.
    if not layout.is_signature(sig):
        raise ConfigError(f"'{sig}' is not a signature (8 hex characters, as `audioflow ls` shows)")
    folder = xp_folder(sig)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        entry = cluster_config()
        raise ConfigError(
            f"no XP '{sig}' under {layout.xps_dir(entry['xp_root'])} (team {entry['team']}, "
            f"cluster {entry['cluster']}); list XPs with `audioflow ls` or check AUDIOFLOW_XP_DIR"
        )
    try:
        cfg = OmegaConf.load(config_path)
    except Exception as exc:
        raise ConfigError(f"{config_path}: unreadable ({exc}); restore or delete it") from exc
    overrides = _read_json(folder / OVERRIDES_FILE, [])
    delta = [tuple(kv) for kv in _read_json(folder / DELTA_FILE, [])]
    return XP(sig=sig, overrides=list(overrides), cfg=cfg, folder=folder, delta=delta)
