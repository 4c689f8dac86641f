"""Settings read once when a solver starts: the torch thread count."""

from omegaconf import OmegaConf

from audioflow.solvers.settings import torch_threads


def test_num_threads_set_in_the_config_wins_over_the_launcher(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert torch_threads(OmegaConf.create({"num_threads": 3})) == 3


def test_null_num_threads_takes_the_launchers_share(monkeypatch):
    # the local and Kubernetes launchers export a rule's threads as OMP_NUM_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert torch_threads(OmegaConf.create({"num_threads": None})) == 2


def test_no_setting_anywhere_is_one_thread(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert torch_threads(OmegaConf.create({"num_threads": None})) == 1
    assert torch_threads(OmegaConf.create({})) == 1
