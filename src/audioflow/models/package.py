"""A standalone codec package: the folder written by ``audioflow export``.

Layout (all three files are needed to use the model without its XP):

- ``model.th``: the codec's ``state_dict`` (tensors only: ``torch.load(weights_only=True)``);
- ``config.yaml``: the XP's fully resolved config, from which the model is rebuilt;
- ``metadata.json``: signature, manifest hashes, code version, metrics.

The package is written into a temporary sibling folder and renamed into place, so a
reader never sees a half-written package.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from audioflow import atomic
from audioflow.models.builders import build_compression_model
from audioflow.models.encodec import EncodecModel

FILES = ("model.th", "config.yaml", "metadata.json")


class PackageError(ValueError):
    """A folder that is not a usable codec package (the message says what is wrong)."""


def write_package(
    folder: str | os.PathLike, state_dict: dict, cfg: Any, metadata: dict, overwrite: bool = False
) -> Path:
    """Write a package atomically.

    Args:
        folder: destination folder (must not exist unless ``overwrite``).
        state_dict: the codec's weights.
        cfg: the resolved config (DictConfig or dict).
        metadata: JSON-serialisable metadata.
        overwrite: replace an existing package.

    Returns:
        The package folder.

    Raises:
        PackageError: the destination exists and ``overwrite`` is false.
    """
    dest = Path(folder)
    if dest.exists() and not overwrite:
        raise PackageError(f"{dest} already exists; choose another -o folder or pass --force")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # umask's mode, not mkdtemp's 0700: a published package is read by the whole team
    tmp = atomic.temp_folder_beside(dest)
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        torch.save(tensors, tmp / "model.th")
        container = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
        (tmp / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(container)))
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def load_package(folder: str | os.PathLike, device: str = "cpu") -> tuple[EncodecModel, dict]:
    """Rebuild a codec from a package, in eval mode.

    Args:
        folder: the package folder.
        device: where to put the model.

    Returns:
        (model, metadata).

    Raises:
        PackageError: a file is missing or the weights do not fit the config.
    """
    root = Path(folder)
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise PackageError(
            f"{root}: not a codec package (missing {', '.join(missing)}); "
            "create one with `audioflow export SIG -o DIR`"
        )
    cfg = OmegaConf.load(root / "config.yaml")
    metadata = json.loads((root / "metadata.json").read_text())
    model = build_compression_model(cfg)
    try:
        state = torch.load(root / "model.th", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises many types for foreign or truncated files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PackageError(f"{root / 'model.th'}: cannot load the weights ({first})") from exc
    return model.to(device).eval(), metadata
