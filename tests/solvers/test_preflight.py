"""What `audioflow run` checks before writing anything: devices, process counts, and
whether a checkpoint's weights fit a model."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from audioflow.solvers import preflight, trusted


def test_process_count_and_batch_division():
    assert preflight.process_count("3", "cpu") == 3
    assert preflight.process_count("all", "cpu") == 1
    cfg = OmegaConf.create({"dataset": {"batch_size": 8, "valid": {"batch_size": 6}}})
    assert preflight.batch_problems(cfg, 1) == [] and preflight.batch_problems(cfg, 2) == []
    (problem,) = preflight.batch_problems(cfg, 4)
    assert problem.startswith("dataset.valid.batch_size=6 does not divide over 4 processes")
    assert preflight.device_problems("cpu", 4) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_named():
    (problem,) = preflight.device_problems("cuda", 1)
    assert problem == "device=cuda: no CUDA GPU is visible on this machine; use device=cpu"


@pytest.mark.gpu
def test_every_gpu_for_a_bare_d_and_no_more_processes_than_gpus():
    count = torch.cuda.device_count()
    assert preflight.process_count("all", "cuda") == count
    assert preflight.device_problems("cuda", count) == []
    assert f"this machine has {count} GPU(s)" in preflight.device_problems(f"cuda:{count}", 1)[0]
    assert "one GPU per process" in preflight.device_problems("cuda", count + 1)[0]


def _module_state(*shapes):
    return {f"{i}.weight": torch.zeros(shape) for i, shape in enumerate(shapes)}


def test_check_fits_names_the_first_difference():
    model = {"model": _module_state((4, 2), (1, 4)), "optimizer": {"state": {}, "param_groups": []}}
    assert trusted.check_fits({"model": _module_state((4, 2), (1, 4))}, model) is None
    assert trusted.check_fits({"": _module_state((4, 2), (1, 4))}, model) is None  # model.th
    shape = trusted.check_fits({"model": _module_state((8, 2), (1, 4))}, model)
    assert shape == "model: '0.weight' is [8, 2] there, [4, 2] in the model"
    missing = trusted.check_fits({"model": _module_state((4, 2))}, model)
    assert missing == "model: 1 weights missing (1.weight...)"
    other = trusted.check_fits({"disc": _module_state((4, 2))}, model)
    assert other == "it holds weights for 'disc', which this solver does not have"


def test_saved_states_of_audioflow_files_and_packages(tmp_path):
    state = {"model": _module_state((2, 2))}
    best = {"format": "audioflow.checkpoint", "kind": "best", "state": state}
    assert trusted.saved_states(best, tmp_path, "x") == state
    latest = {"format": "audioflow.checkpoint", "kind": "checkpoint", "best": {"state": None}}
    latest["state"] = {**state, "optimizer": {"state": {}}}
    assert set(trusted.saved_states(latest, tmp_path, "x")) == {"model", "optimizer"}
    assert trusted.saved_states(state["model"], tmp_path, "x") == {"": state["model"]}
    with pytest.raises(trusted.UntrustedCheckpoint, match="holds no model weights"):
        trusted.saved_states({"epoch": 3}, tmp_path, "x")
