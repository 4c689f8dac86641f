"""Exact resume: SIGKILL a training process at random updates, resume, compare bit for bit."""

import json
import random
import subprocess
import sys

import pytest
import torch

from audioflow.solvers import checkpoint

from .conftest import subprocess_env

OVERRIDES = [
    "solver=my_solver",
    "optim.ema.use=true",
    "optim.epochs=2",
    "checkpoint.save_every_updates=1",
]
TOTAL_UPDATES = 10  # optim.epochs x optim.updates_per_epoch of my_solver.yaml


def _run(user_dir, root, kill_at=0):
    """``kill_at``: a train update (1-based over the run), or ``"valid1"`` (valid of epoch 1)."""
    cmd = [sys.executable, "-m", "audioflow.cli", "run", *OVERRIDES, "--config-dir", str(user_dir)]
    if kill_at == "valid1":
        env = subprocess_env(root, MY_SOLVER_KILL_IN_VALID="1")
    else:
        env = subprocess_env(root, MY_SOLVER_KILL_AT=str(kill_at))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _final_state(root):
    (folder,) = (root / "xps").iterdir()
    payload = checkpoint.load(folder / "checkpoint.th")
    history = json.loads((folder / "history.json").read_text())
    best = checkpoint.load(folder / "best.th")["state"]
    return payload, history, best


def _assert_identical(a, b, path="state"):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _assert_identical(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _kill_and_resume(make_solver, user_dir, tmp_path, kills):
    make_solver(*OVERRIDES[1:]).run()  # the uninterrupted reference, in this process
    for kill_at in kills:
        killed = _run(user_dir, tmp_path / "killed", kill_at=kill_at)
        assert killed.returncode == -9, f"kill at {kill_at}: {killed.stderr[-2000:]}"
    resumed = _run(user_dir, tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    a, hist_a, best_a = _final_state(tmp_path / "xp_root")
    b, hist_b, best_b = _final_state(tmp_path / "killed")
    for key in ("state", "train_metrics", "rng"):  # state: weights, loop, history, best
        _assert_identical(a[key], b[key], key)
    assert hist_a == hist_b
    _assert_identical(best_a, best_b, "best.th")


def test_sigkill_at_a_random_update_then_resume_is_bit_identical(make_solver, user_dir, tmp_path):
    kill_at = random.Random().randint(1, TOTAL_UPDATES)
    print("kill point", kill_at)  # shown on failure, to replay
    _kill_and_resume(make_solver, user_dir, tmp_path, [kill_at])


@pytest.mark.slow
def test_sigkill_at_several_random_updates_then_resume_is_bit_identical(
    make_solver, user_dir, tmp_path
):
    kills = sorted(random.Random().sample(range(1, TOTAL_UPDATES + 1), 4))
    kills.insert(sum(k <= TOTAL_UPDATES // 2 for k in kills), "valid1")  # between the epochs
    print("kill points", kills)
    _kill_and_resume(make_solver, user_dir, tmp_path, kills)
