"""Fixtures of the LM tests: a synth corpus, a tiny codec published as //reference/demo_codec,
and XPs under a temporary root."""

from __future__ import annotations

import pytest

from . import codec_helpers


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small synth corpus: train/valid/evaluate manifests (paths), built once."""
    from audioflow.data.manifest import build_manifest
    from audioflow.data.synth import write_corpus

    root = tmp_path_factory.mktemp("synth")
    manifests = {}
    for split, n, seed in (("train", 24, 1), ("valid", 8, 2), ("evaluate", 8, 3)):
        write_corpus(root / split, n, seed)
        build_manifest([root / split], root / split / "manifest.jsonl.gz", workers=1)
        manifests[split] = root / split / "manifest.jsonl.gz"
    return {k: str(v) for k, v in manifests.items()}


@pytest.fixture
def lm_env(tmp_path, monkeypatch):
    """XP root and reference dir under tmp_path, the tiny codec at //reference/demo_codec."""
    reference = tmp_path / "reference"
    codec_helpers.write_codec_package(reference / "demo_codec", seed=0)
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xp_root"))
    monkeypatch.setenv("AUDIOFLOW_REFERENCE_DIR", str(reference))
    return tmp_path
