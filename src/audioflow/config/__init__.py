"""audioflow.config: compose config groups, validate, sign, and manage XP folders.

Public API (names are imported lazily so that ``import audioflow.config`` stays cheap and
never imports torch; Hydra is loaded on the first compose):

- ``compose(overrides, config_dir=None) -> DictConfig``
- ``signature(overrides, config_dir=None) -> str`` and ``signatures(list_of_overrides)``
- ``get_xp(overrides, config_dir=None, accept_drift=False) -> XP``, ``xp_from_sig(sig)``
- ``xp_root() -> Path``, ``cluster_config() -> dict``, ``resolve_path(path) -> Path``
- ``ConfigError``, ``DriftError``, ``XPLockedError``, ``xp_lock``
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compose": "composition",
    "signature": "signing",
    "signatures": "signing",
    "get_xp": "folder",
    "xp_from_sig": "folder",
    "xp_root": "teams",
    "cluster_config": "teams",
    "resolve_path": "paths",
    "ConfigError": "errors",
    "DriftError": "errors",
    "XPLockedError": "errors",
    "xp_lock": "lock",
    "XP": "xp",
    "current_xp": "xp",
    "set_current_xp": "xp",
    "using_xp": "xp",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'audioflow.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
