"""Check a checkpoint file before a run uses it: readable, weights only, fits the model.

``audioflow run`` calls these before anything is written: a ``continue_from=`` file that is
empty, truncated, text, a pickle that would run code, or the weights of another
architecture is refused with one line, and so is an XP's own checkpoint that no longer
fits the model its changed config builds (``--accept-drift`` after an architecture
change). Files are only ever read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from audioflow.config.layout import BEST_CHECKPOINT, LATEST_CHECKPOINT, SIG_RE, xp_folder

# What a `continue_from=DIR` folder is searched for, in order: an XP folder, a package.
SOURCE_FILES = (BEST_CHECKPOINT, LATEST_CHECKPOINT, "model.th")
_MAX_SHOWN = 2


class UntrustedCheckpoint(ValueError):
    """A checkpoint file that must not be loaded; the message is one line, ready to print."""


def source_file(source: str, xp_root: Path, resolve=None) -> Path:
    """The file ``continue_from=SOURCE`` names: an XP's signature, a folder or a file.

    Args:
        source: the value of ``continue_from``.
        xp_root: the XP root, where a signature's folder lives.
        resolve: maps a user path to this machine's (``//reference/...``); identity if None.

    Raises:
        UntrustedCheckpoint: nothing usable there.
    """
    if SIG_RE.match(source):
        folder = xp_folder(xp_root, source)
        if not folder.is_dir():
            raise UntrustedCheckpoint(f"continue_from={source}: no XP folder {folder}")
        path = folder
    else:
        path = Path(resolve(source) if resolve else source)
    if path.is_dir():
        found = [path / name for name in SOURCE_FILES if (path / name).is_file()]
        if not found:
            raise UntrustedCheckpoint(
                f"continue_from={source}: {path} holds no {', '.join(SOURCE_FILES)}"
            )
        return found[0]
    if not path.is_file():
        raise UntrustedCheckpoint(f"continue_from={source}: {path} does not exist")
    return path


def _why_unreadable(path: Path, exc: BaseException) -> str:
    if path.stat().st_size == 0:
        return "it is empty (0 bytes)"
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
        # torch's message suggests weights_only=False, i.e. running the file's code: never.
        return "it holds Python objects besides tensors, whose code is never run"
    head = path.read_bytes()[:512]
    if not zipfile.is_zipfile(path) and _is_text(head):
        return "it is a text file"
    return "it is truncated or not a torch file"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def load_trusted(path: Path, what: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, every failure as one line.

    Args:
        path: the file.
        what: how the message names the file's role, e.g. ``continue_from=1a2b3c4d``.

    Raises:
        UntrustedCheckpoint: the file cannot be loaded as weights.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for broken or foreign files
        raise UntrustedCheckpoint(
            f"{what}: {path} is not a trusted checkpoint: {_why_unreadable(path, exc)}; "
            "give a best.th or checkpoint.th of an audioflow XP, or an exported model.th"
        ) from None


def saved_states(payload: object, path: Path, what: str) -> dict[str, dict]:
    """The module states a ``continue_from`` file holds, by registered name.

    An audioflow ``best.th`` gives its best state, a ``checkpoint.th`` its best state (or
    its whole state before any valid), a package's ``model.th`` (a plain state dict) is
    returned as ``{"": state}``: the caller matches it to the solver's model.

    Raises:
        UntrustedCheckpoint: the payload holds no weights.
    """
    if isinstance(payload, dict) and payload.get("format") == "audioflow.checkpoint":
        if payload.get("kind") == "best":
            return dict(payload.get("state") or {})
        # the best state is registered with the solver's state ("best"), as the loop's
        best = (payload.get("best") or (payload.get("state") or {}).get("best") or {}).get("state")
        return dict(best or payload.get("state") or {})
    if _is_module_state(payload):
        return {"": payload}
    if isinstance(payload, dict) and payload and all(_is_module_state(v) for v in payload.values()):
        return dict(payload)
    raise UntrustedCheckpoint(
        f"{what}: {path} is not a trusted checkpoint: it holds no model weights"
    )


def _is_module_state(value: object) -> bool:
    return (
        isinstance(value, dict) and bool(value) and all(torch.is_tensor(v) for v in value.values())
    )


def _mismatch(saved: dict, current: dict) -> str | None:
    """What keeps ``saved`` from loading into a module whose state is ``current``."""
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    shapes = [k for k in saved if k in current and tuple(saved[k].shape) != tuple(current[k].shape)]
    if shapes:
        key = shapes[0]
        return (
            f"{key!r} is {list(saved[key].shape)} there, {list(current[key].shape)} in the model"
            + (f" (+{len(shapes) - 1} more)" if len(shapes) > 1 else "")
        )
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights missing ({', '.join(missing[:_MAX_SHOWN])}...)")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown ({', '.join(unexpected[:_MAX_SHOWN])}...)")
        return ", ".join(parts)
    return None


def check_fits(saved: dict[str, dict], model_states: dict[str, object]) -> str | None:
    """Why the saved module states do not load into the solver's (None when they do).

    Args:
        saved: ``{name: state_dict}`` read from a file; the name ``""`` is a bare model
            state, matched to the solver's module state sharing most of its keys.
        model_states: the solver's ``state_dict()`` (``{name: state}``; only module
            states, dicts of tensors, are compared).
    """
    modules = {n: s for n, s in model_states.items() if _is_module_state(s)}
    for name, state in saved.items():
        if name == "":
            if not modules:
                return "the solver has no module to load it into"
            name = max(modules, key=lambda n: len(set(modules[n]) & set(state)))
        if name not in model_states:
            return f"it holds weights for {name!r}, which this solver does not have"
        if name in modules and _is_module_state(state):
            problem = _mismatch(state, modules[name])
            if problem:
                return f"{name}: {problem}"
    return None
