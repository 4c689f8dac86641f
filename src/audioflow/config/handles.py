"""How the CLI names an XP: by its overrides, or by its signature (a unique prefix will do).

``sig``, ``info`` and ``run`` check a command line the same way (:func:`compose_checked`):
the team/cluster selection and every override, all problems reported together. An XP
folder records what composing it again needs (``overrides.json``, ``config_dir.json``),
so ``audioflow run -f SIG`` and ``audioflow info SIG`` need nothing retyped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .composition import Composed, compose_parts, parse_overrides
from .errors import ConfigError
from .layout import CONFIG_DIR_FILE, CONFIG_FILE, OVERRIDES_FILE, SIG_RE, xps_dir
from .teams import cluster_config, use_config_dir, xp_root


def compose_checked(overrides: list[str], config_dir: str | os.PathLike | None) -> Composed:
    """Compose an XP's config after checking the team/cluster selection too.

    Also makes ``config_dir`` the folder the team file is looked up in for this process.

    Raises:
        ConfigError: every problem found (team file, cluster, overrides, values), one line
            each, in that order.
    """
    if config_dir is not None and not Path(config_dir).expanduser().is_dir():
        raise ConfigError(f"--config-dir {config_dir}: not a directory; give a config folder")
    use_config_dir(config_dir)
    problems: list[str] = []
    try:
        cluster_config()
    except ConfigError as exc:
        problems += exc.problems
    try:
        parts = compose_parts(overrides, config_dir)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return parts


def find_sig(text: str) -> str:
    """The signature of the one XP under the XP root whose signature starts with ``text``.

    Args:
        text: a signature or a unique prefix of one (a trailing ``/`` is ignored).

    Raises:
        ConfigError: not hex, no XP, or several XPs start with it (they are listed).
    """
    prefix = text.rstrip("/")
    if not prefix or len(prefix) > 8 or not SIG_RE.match(prefix.ljust(8, "0")):
        raise ConfigError(
            f"'{text}' is not a signature or a prefix of one (hex characters, as "
            "`audioflow ls` shows)"
        )
    root = xps_dir(xp_root())
    found = sorted(p.name for p in root.glob(f"{prefix}*") if (p / CONFIG_FILE).is_file())
    if not found:
        which = f"'{prefix}'" if len(prefix) == 8 else f"whose signature starts with '{prefix}'"
        raise ConfigError(
            f"no XP {which} under {root}; list XPs with `audioflow ls` or check "
            "AUDIOFLOW_XP_DIR (and AUDIOFLOW_TEAM, AUDIOFLOW_CLUSTER)"
        )
    if len(found) > 1:
        raise ConfigError(
            f"'{prefix}' starts {len(found)} signatures ({', '.join(found[:6])}); type more of it"
        )
    return found[0]


@dataclass(frozen=True)
class Recipe:
    """What an XP folder says about composing its XP again.

    Attributes:
        sig: the XP's signature.
        overrides: the overrides it was created with.
        config_dir: the user config folder it was composed with (None: built-in only).
    """

    sig: str
    overrides: list[str]
    config_dir: str | None


def recipe(sig: str) -> Recipe:
    """Read the overrides and config folder an existing XP was created with.

    Raises:
        ConfigError: the folder's files are unreadable, or its config folder is gone.
    """
    folder = xps_dir(xp_root()) / sig
    try:
        overrides = json.loads((folder / OVERRIDES_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder / OVERRIDES_FILE}: unreadable ({exc}); restore it") from None
    try:
        config_dir = json.loads((folder / CONFIG_DIR_FILE).read_text()).get("config_dir")
    except FileNotFoundError:
        config_dir = None  # an XP folder written before the config folder was recorded
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{folder / CONFIG_DIR_FILE}: unreadable ({exc}); restore it") from None
    if config_dir is not None and not Path(config_dir).is_dir():
        raise ConfigError(
            f"XP {sig} was composed with --config-dir {config_dir}, which no longer exists; "
            "pass --config-dir with its new place"
        )
    return Recipe(sig, [str(o) for o in overrides], config_dir)


def merge_overrides(stored: list[str], extra: list[str]) -> list[str]:
    """``stored`` with ``extra`` applied: an extra override replaces a stored one of the
    same key or group (``optim.lr=1e-4`` replaces ``optim.lr=3e-4``), others are added.

    Raises:
        ConfigError: an override does not parse.
    """
    parsed, problems = parse_overrides([*stored, *extra])
    if problems:
        raise ConfigError(problems)
    new_keys = {ov.key_or_group for ov in parsed[len(stored) :]}
    kept = [text for text, ov in zip(stored, parsed) if ov.key_or_group not in new_keys]
    return kept + list(extra)
