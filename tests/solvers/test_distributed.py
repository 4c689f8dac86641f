"""2 processes (torchrun, gloo) and 1 process with the same global batch train the same weights."""

import subprocess
import sys

import torch

from audioflow.solvers import checkpoint

from .conftest import subprocess_env

# no dropout and no input noise: those draw per-rank random numbers and would differ
OVERRIDES = ["toy.dropout=0.0", "toy.noise=0.0", "optim.epochs=1", "optim.ema.use=true"]


def test_two_processes_match_one_process(make_solver, user_dir, tmp_path):
    single = make_solver(*OVERRIDES)
    single.run()
    cmd = [sys.executable, "-m", "audioflow.cli", "run", "-d", "2", "solver=my_solver"]
    cmd += [*OVERRIDES, "--config-dir", str(user_dir)]
    root = tmp_path / "two"
    done = subprocess.run(
        cmd, env=subprocess_env(root), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (root / "xps").iterdir()
    assert folder.name == single.xp.sig  # world size never enters the signature
    assert (folder / "solver.log").exists() and (folder / "solver.1.log").exists()
    one = checkpoint.load(single.folder / "checkpoint.th")["state"]
    two = checkpoint.load(folder / "checkpoint.th")["state"]
    assert one["optimizer"]["state"][0]["step"].item() == 5
    for name in ("model",):
        for key, value in one[name].items():
            torch.testing.assert_close(two[name][key], value, rtol=1e-5, atol=1e-7)
    for key, value in one["ema"]["state"]["model"].items():
        torch.testing.assert_close(two["ema"]["state"]["model"][key], value, rtol=1e-5, atol=1e-7)
