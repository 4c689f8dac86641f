"""The realistic compression config on a GPU: a few bf16 steps of both OptimSchedulers."""

from __future__ import annotations

import pytest
import torch

from audioflow.config.xp import set_current_xp

from .test_compression import make_corpus, make_solver

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_default_config_trains_on_the_gpu_in_bf16(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xps"))
    sources = make_corpus(tmp_path / "data")
    overrides = [
        "solver=compression/default",
        "device=cuda",
        "sample_rate=16000",
        "optim.epochs=1",
        "optim.updates_per_epoch=4",
        "dataset.batch_size=8",
        "dataset.num_workers=0",
        "dataset.valid.num_samples=8",
        "dataset.evaluate.num_samples=8",
        "generate.max_files=1",
        "evaluate.bandwidths=[1]",
        "generate.bandwidths=[1]",
        *sources,
    ]
    try:
        solver = make_solver(overrides)
        solver.run()
    finally:
        set_current_xp(None)
    assert next(solver.codec.parameters()).is_cuda
    assert solver.optim_sches["gen"].real_step == 4
    assert solver.optim_sches["disc"].real_step == 4
    metrics = solver.history[-1]["evaluate"]
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
