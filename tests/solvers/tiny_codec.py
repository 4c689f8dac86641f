"""A tiny real compression XP for the export, codec and load_codec tests: one epoch of two
updates on four synthetic files (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioflow.config.xp import set_current_xp
from audioflow.data.manifest import build_manifest
from audioflow.data.synth import write_corpus

TINY = [
    "solver=compression/debug",
    "optim.epochs=1",
    "optim.updates_per_epoch=2",
    "dataset.batch_size=2",
    "dataset.valid.num_samples=2",
    "dataset.evaluate.num_samples=2",
    "dataset.generate.num_samples=1",
    "logging.log_tensorboard=false",
]


def train_tiny_codec(root: Path):
    """Write a corpus under ``root/data``, train the tiny XP under ``root/xps``; its XP."""
    from audioflow.config import get_xp
    from audioflow.solvers.registry import get_solver_class

    write_corpus(root / "data", 4, 1)
    manifest = root / "data" / "manifest.jsonl.gz"
    build_manifest([root / "data"], manifest, workers=1)
    sources = [f"datasource.{s}={manifest}" for s in ("train", "valid", "evaluate", "generate")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
        try:
            xp = get_xp([*TINY, *sources])
            set_current_xp(xp)
            get_solver_class(str(xp.cfg.solver))(xp.cfg).run()
        finally:
            set_current_xp(None)
    return xp
