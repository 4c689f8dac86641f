"""A standalone codec package: the folder written by ``audioflow export``.

Layout (all three files are needed to use the model without its XP):

- ``model.th``: the codec's ``state_dict`` (tensors only: ``torch.load(weights_only=True)``);
- ``config.yaml``: the XP's fully resolved config, from which the model is rebuilt;
- ``metadata.json``: the codec contract (sample rate, channels, frame rate, codebooks,
  cardinality, bandwidths), the lineage (signature, manifest hashes, code version), the
  loader that reads the package back and the metrics.

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

    exit_code = 1


class OutputError(PackageError):
    """The destination cannot receive a package; the user has to choose another (exit 2)."""

    exit_code = 2


def codec_weights(state: dict) -> dict:
    """The codec's weights out of a compression model's state (the discriminator left out)."""
    return {k: v for k, v in state.items() if not k.startswith("discriminator.")}


def _foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that a package does not hold (sub-folders and links included)."""
    return sorted(
        p.name for p in folder.iterdir() if p.name not in FILES or p.is_symlink() or not p.is_file()
    )


def check_destination(folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse a destination that cannot receive a package, before anything is written.

    With ``overwrite``, only an existing package (a folder holding nothing but the package
    files) is replaced: ``--force`` must never delete a folder of someone's other files.

    Returns:
        The destination as a Path.

    Raises:
        OutputError: the destination or one of its parents is a file, a link, or a folder
            that is not a package.
        PackageError: the destination exists and ``overwrite`` is false.
    """
    dest = Path(folder)
    blocking = atomic.blocking_file(dest)
    if blocking is not None:
        raise OutputError(f"{dest}: {blocking} is a file, not a folder; choose another output")
    if dest.is_symlink():
        raise OutputError(f"{dest}: is a link, not a package folder; choose another output")
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest}: is a file, not a package folder; choose another output")
    if dest.exists() and not overwrite:
        raise PackageError(f"{dest} already exists; choose another -o folder or pass --force")
    if dest.exists():
        foreign = _foreign_entries(dest)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise OutputError(
                f"{dest}: not a codec package (holds {shown}); --force replaces packages "
                "only; choose another output"
            )
    return dest


def _swap_in(tmp: Path, dest: Path) -> None:
    """Rename the written package ``tmp`` to ``dest``, replacing the package there."""
    if not dest.exists():
        os.replace(tmp, dest)
        return
    # The old package is moved aside and checked again there: anything added to it since
    # check_destination puts it back untouched instead of being deleted with it.
    old = atomic.temp_beside(dest)
    os.rename(dest, old)
    try:
        if _foreign_entries(old):
            raise OutputError(f"{dest}: not a codec package any more; choose another output")
        os.replace(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    for name in FILES:
        (old / name).unlink(missing_ok=True)
    old.rmdir()


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
        OutputError: the destination cannot receive a package (see check_destination).
    """
    dest = check_destination(folder, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # umask's mode, not mkdtemp's 0700: a published package is read by the whole team
    tmp = atomic.temp_folder_beside(dest)
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        torch.save(tensors, tmp / "model.th")
        container = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
        (tmp / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(container)))
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        _swap_in(tmp, dest)
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
        PackageError: a file is missing or unreadable (the message names it), or the
            weights do not fit the config.
    """
    root = Path(folder)
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise PackageError(
            f"{root}: not a codec package (missing {', '.join(missing)}); "
            "create one with `audioflow export SIG -o DIR`"
        )
    cfg = _read_config(root / "config.yaml")
    metadata = _read_metadata(root / "metadata.json")
    try:
        model = build_compression_model(cfg)
    except Exception as exc:  # a foreign or edited config fails in many ways
        raise PackageError(
            f"{root / 'config.yaml'}: cannot build the codec ({_first_line(exc)}); "
            "export the package again"
        ) from exc
    try:
        state = torch.load(root / "model.th", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises many types for foreign or truncated files
        raise PackageError(
            f"{root / 'model.th'}: cannot load the weights ({_first_line(exc)})"
        ) from exc
    return model.to(device).eval(), metadata


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_config(path: Path):
    import yaml
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, UnicodeDecodeError, OmegaConfBaseException) as exc:
        raise PackageError(
            f"{path}: not valid YAML ({type(exc).__name__}); export the package again"
        ) from exc
    if not OmegaConf.is_dict(cfg):
        raise PackageError(f"{path}: not a config mapping; export the package again")
    return cfg


def _read_metadata(path: Path) -> dict:
    try:
        metadata = json.loads(path.read_bytes())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PackageError(
            f"{path}: not valid JSON ({_first_line(exc)}); export the package again"
        ) from exc
    if not isinstance(metadata, dict):
        raise PackageError(f"{path}: not a JSON object; export the package again")
    return metadata


def _require_files(root: Path) -> None:
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise PackageError(
            f"{root}: not a package (missing {', '.join(missing)}); "
            "create one with `audioflow export SIG -o DIR`"
        )


def read_metadata(folder: str | os.PathLike) -> dict:
    """The ``metadata.json`` of a package.

    Raises:
        PackageError: not a package, or the file is not a JSON object.
    """
    root = Path(folder)
    _require_files(root)
    return _read_metadata(root / "metadata.json")


def read_config(folder: str | os.PathLike):
    """The resolved config (``config.yaml``) of a package.

    Raises:
        PackageError: not a package, or the file is not a YAML mapping.
    """
    root = Path(folder)
    _require_files(root)
    return _read_config(root / "config.yaml")
