"""Fixtures of the ASR tests: a small spoken corpus (espeak-ng) and solvers on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from audioflow.data.manifest import build_manifest
from audioflow.data.speech_synth import write_speech_corpus

SPLITS = {"train": (48, 1, "train"), "valid": (8, 2, "train"), "evaluate": (8, 3, "test")}
# A recognizer small enough to train a few updates in a second.
TINY = [
    "asr_model.dim=32",
    "asr_model.layers=1",
    "asr_model.heads=2",
    "asr_model.ffn_dim=64",
    "asr_model.n_mels=32",
    "dataset.batch_size=8",
    "logging.log_tensorboard=false",
    "decoding.beam_size=4",
]


@pytest.fixture(scope="session")
def speech_corpus(tmp_path_factory) -> list[str]:
    """The datasource overrides of a spoken corpus (train/valid voices, held-out evaluate)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng; .ci/run does)")
    root = tmp_path_factory.mktemp("speech")
    for split, (n, seed, voices) in SPLITS.items():
        write_speech_corpus(root / split, n, seed, voices)
        build_manifest([root / split], root / split / "manifest.jsonl.gz", workers=1,
                       require_text=True)  # fmt: skip
    sources = {"train": "train", "valid": "valid", "evaluate": "evaluate", "generate": "evaluate"}
    return [f"datasource.{k}={root / v / 'manifest.jsonl.gz'}" for k, v in sources.items()]


@pytest.fixture
def make_asr_solver(speech_corpus, tmp_path, monkeypatch):
    """``make_asr_solver(*overrides)`` -> the AsrSolver of ``solver=asr/debug`` + overrides."""
    from audioflow.config import get_xp
    from audioflow.config.xp import set_current_xp
    from audioflow.solvers.registry import get_solver_class

    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xps"))

    def make(*overrides: str):
        chosen = [o for o in overrides if o.startswith("solver=")] or ["solver=asr/debug"]
        rest = [o for o in overrides if not o.startswith("solver=")]
        xp = get_xp([*chosen, *speech_corpus, *TINY, *rest])
        set_current_xp(xp)
        return get_solver_class(str(xp.cfg.solver))(xp.cfg)

    yield make
    set_current_xp(None)


def corpus_files(speech_corpus: list[str], split: str) -> list[Path]:
    manifest = next(o for o in speech_corpus if o.startswith(f"datasource.{split}="))
    return sorted(Path(manifest.split("=", 1)[1]).parent.glob("*.flac"))
