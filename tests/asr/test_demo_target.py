"""The speech demo's target, end to end on the demo corpus (slow: minutes on 2 cores):
WER <= 2 % on the held-out voices' digit strings after solver=asr/debug."""

from __future__ import annotations

import shutil
import time

import pytest

from audioflow.data.manifest import build_manifest
from audioflow.data.speech_synth import write_speech_corpus

# the sizes and seeds of config/workflow_speech.yaml
SPLITS = {"train": (3000, 1, "train"), "valid": (150, 2, "train"), "evaluate": (400, 3, "test")}


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the corpus and 800 updates: minutes, many more on a loaded machine
def test_demo_reaches_the_wer_target(tmp_path, monkeypatch):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from audioflow.config import get_xp
    from audioflow.config.xp import set_current_xp
    from audioflow.solvers.registry import get_solver_class

    sources = []
    for split, (n, seed, voices) in SPLITS.items():
        write_speech_corpus(tmp_path / split, n, seed, voices)
        manifest = tmp_path / split / "manifest.jsonl.gz"
        build_manifest([tmp_path / split], manifest, workers=2, require_text=True)
        sources.append(f"datasource.{split}={manifest}")
    sources.append(f"datasource.generate={tmp_path / 'evaluate' / 'manifest.jsonl.gz'}")
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xps"))
    xp = get_xp(["solver=asr/debug", *sources, "logging.log_tensorboard=false"])
    set_current_xp(xp)
    try:
        solver = get_solver_class("asr")(xp.cfg)
        began = time.process_time()
        solver.run()
        cpu = time.process_time() - began
    finally:
        set_current_xp(None)
    final = solver.history[-1]["evaluate"]
    print(f"evaluate: {final}; CPU {cpu:.0f} s")
    assert final["wer_digits"] <= 0.02
