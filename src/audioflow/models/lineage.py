"""Where a model comes from: the hashes of the manifests it trained on and the code version.

Written into an exported package's ``metadata.json`` (``lineage``) and returned by
``load_codec`` for an XP, so that a consumer can tell which data and code made a model.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_hashes(datasource) -> dict:
    """``{stage: {"path": ..., "sha256": ...}}`` for every manifest the XP names."""
    from audioflow.config.errors import ConfigError
    from audioflow.config.paths import resolve_path

    hashes = {}
    for stage, manifest in (datasource or {}).items():
        if manifest is None:
            continue
        entry = {"path": str(manifest), "sha256": None}
        try:
            path = resolve_path(str(manifest))
        except ConfigError:
            path = None
        if path is not None and path.is_file():
            entry["sha256"] = file_sha256(path)
        hashes[str(stage)] = entry
    return hashes


def code_version() -> dict:
    """audioflow's version and, from a git checkout, its commit and whether it is modified."""
    import torch

    import audioflow

    info = {"audioflow": getattr(audioflow, "__version__", None), "torch": torch.__version__}
    try:
        from importlib.metadata import version

        info["audioflow"] = info["audioflow"] or version("audioflow")
    except Exception:  # not installed as a distribution: keep what the module says
        pass
    root = Path(audioflow.__file__).resolve().parents[2]
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", str(root), *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        info["git_commit"] = run("rev-parse", "HEAD")
        info["git_dirty"] = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info
