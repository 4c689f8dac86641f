"""2 processes (torchrun, gloo) and 1 process with the same global batch train the same weights."""

import json
import subprocess
import sys

import torch

from audioflow.solvers import checkpoint

from .conftest import run_audioflow, subprocess_env

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


def _run_two(user_dir, root, **env):
    cmd = [sys.executable, "-m", "audioflow.cli", "run", "-d", "2", "solver=my_solver"]
    cmd += ["optim.epochs=1", "checkpoint.save_every_updates=1", "--config-dir", str(user_dir)]
    return subprocess.run(
        cmd, env=subprocess_env(root, **env), capture_output=True, text=True, timeout=300
    )


def test_two_processes_killed_mid_epoch_resume_each_rank_exactly(user_dir, tmp_path):
    """Ranks see other batches, so each must get its own running train means back."""
    reference = _run_two(user_dir, tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = _run_two(user_dir, tmp_path / "killed", MY_SOLVER_KILL_AT="4")
    assert killed.returncode != 0
    (folder,) = (tmp_path / "killed" / "xps").iterdir()
    saved = checkpoint.load(folder / "checkpoint.th")
    assert saved["state"]["loop"]["update"] == 3
    # each rank's own running train means, to continue from
    assert [r["train_metrics"]["counts"]["loss"] for r in saved["per_rank"]] == [3, 3]
    resumed = _run_two(user_dir, tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (ref_folder,) = (tmp_path / "ref" / "xps").iterdir()
    a = checkpoint.load(ref_folder / "checkpoint.th")
    b = checkpoint.load(folder / "checkpoint.th")
    assert json.loads((ref_folder / "history.json").read_text()) == json.loads(
        (folder / "history.json").read_text()
    )
    assert a["state"]["history"] == b["state"]["history"]
    for key, value in a["state"]["model"].items():
        assert torch.equal(b["state"]["model"][key], value), key


def test_two_processes_with_accum_grad_and_bf16(make_solver, user_dir, tmp_path):
    """The AudioCraft-style solver under `run -d 2` with optim.accum_grad=2, precision=bf16."""
    overrides = [*OVERRIDES, "optim.accum_grad=2", "optim.precision=bf16"]
    single = make_solver(*overrides)
    single.run()
    root = tmp_path / "two"
    done = run_audioflow(user_dir, root, "-d", "2", "solver=my_solver", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (root / "xps").iterdir()
    two = checkpoint.load(folder / "checkpoint.th")["state"]
    assert two["optimizer"]["state"][0]["step"].item() == 5  # 5 updates of 2 micro-batches
    for key, value in single.model.state_dict().items():
        # bf16 sums the batch's gradients in another order on 2 processes
        torch.testing.assert_close(two["model"][key], value, rtol=2e-2, atol=2e-3)


def test_a_full_disk_on_rank_0_stops_every_rank_with_one_line(user_dir, small_disk):
    """Rank 0 alone writes the checkpoint; the other rank hears of its failure and stops
    with the same status instead of waiting for it (forever on NCCL or across nodes)."""
    import os

    from audioflow.config import layout

    disk = small_disk(2048)
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * (free - 128 * 1024))  # a checkpoint is ~0.8 MB
    args = ["-d", "2", "solver=my_solver", "toy.hidden=4096", "optim.epochs=1"]
    done = run_audioflow(user_dir, disk, *args)
    assert done.returncode == 2, done.stderr[-3000:]
    (folder,) = layout.xps_dir(disk).iterdir()
    line = f"audioflow run: no space left on {folder} (writing "
    assert [x for x in done.stderr.splitlines() if "no space left" in x][0].startswith(line)
    assert done.stderr.count("no space left") == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "rank 0 failed: no space left" in (folder / "solver.1.log").read_text()
    assert not layout.marker_path(folder, "train", 1).exists()
