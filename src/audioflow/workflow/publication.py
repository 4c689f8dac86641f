"""Which XP a published reference holds, and the record that makes Snakemake republish it.

A reference is named by its ``as`` name, not by signature, and the workflow reruns a job
only when an input is newer than its output. Pointing ``publish:`` at another XP, one
trained earlier, would therefore leave the old model in place. Each published name gets a
one-line record of the signature it should hold, an input of its publish and report
jobs: rewritten (so newer) when the selection changes, kept (or dated back) otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from audioflow import atomic


def published_signature(reference: Path) -> str | None:
    """The signature in ``reference/metadata.json``, or None (missing or unreadable)."""
    try:
        return str(json.loads((Path(reference) / "metadata.json").read_text())["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def publication_record(records: Path, name: str, sig: str, reference: Path) -> Path:
    """The record file of ``name`` (in ``records``), up to date for ``sig``.

    Args:
        records: folder of the records (in the workflow's working directory).
        name: the published name (``as``).
        sig: the signature of the XP ``publish:`` names now.
        reference: the published folder, ``<reference_dir>/<name>``.
    """
    path = Path(records) / f"{name}.sig"
    text = f"{sig}\n"
    try:
        current = path.read_text()
    except OSError:
        current = None
    if current == text:
        return path
    atomic.write_text(path, text, fsync=False)
    if current is None and published_signature(reference) == sig:
        # A first record for a reference that already holds this XP (a fresh checkout,
        # `dvc pull`): dated back so that it does not look newer than the reference.
        os.utime(path, (0, 0))
    return path


def publish_refusal(name: str, overrides, config_dir: str | None = None) -> str | None:
    """Why the XP of ``overrides`` cannot be published as ``name``, or None.

    Runs when the workflow is planned (``snakemake -n`` included), so that a ``publish:``
    entry whose solver cannot export fails before any training rather than at its end.
    Solvers shipped with audioflow all export (a test checks it) and are not imported; a
    user's solver is imported, from ``config_dir`` as ``audioflow run`` does.

    Args:
        name: the published name (``as``).
        overrides: the XP's overrides.
        config_dir: the workflow's user config folder.
    """
    import sys

    from audioflow.config import compose
    from audioflow.solvers.registry import SOLVERS

    solver = str(compose(list(overrides), config_dir).get("solver"))
    if solver in SOLVERS:
        return None
    added = config_dir is not None and str(Path(config_dir).resolve()) not in sys.path
    if added:
        sys.path.insert(0, str(Path(config_dir).resolve()))
    try:
        from audioflow.solvers.exports import export_refusal

        refusal = export_refusal(solver)
    finally:
        if added:
            sys.path.remove(str(Path(config_dir).resolve()))
    return None if refusal is None else f"publish: {name}: {refusal}"
