"""The user solver on a CUDA GPU: trains, keeps EMA and best state, resumes (needs a GPU)."""

import pytest
import torch

from audioflow.solvers import checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_user_solver_trains_and_resumes_on_cuda(make_solver):
    solver = make_solver("device=cuda", "optim.ema.use=true", "checkpoint.save_every_updates=2")
    solver.run()
    assert next(solver.model.parameters()).device.type == "cuda"
    state = checkpoint.load(solver.folder / "checkpoint.th", sig=solver.xp.sig)
    assert "cuda" in state["rng"] and state["epoch"] == 2
    resumed = make_solver("device=cuda", "optim.ema.use=true", "checkpoint.save_every_updates=2")
    assert resumed.restore()
    for key, value in solver.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value)
