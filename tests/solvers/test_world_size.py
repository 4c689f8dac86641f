"""Results do not depend on the number of processes: per-sample noise, summed counts,
every rank's generated samples (1 process against 2 gloo processes, same global batch)."""

import json

import torch

from audioflow.solvers import checkpoint

from .conftest import run_audioflow


def test_per_sample_noise_counts_and_samples_match_one_and_two_processes(
    make_solver, user_dir, tmp_path
):
    overrides = ["solver=noisy_solver", "optim.epochs=1"]
    single = make_solver(*overrides[1:], "solver=noisy_solver")
    single.run()
    root = tmp_path / "two"
    done = run_audioflow(user_dir, root, "-d", "2", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (root / "xps").iterdir()
    one = checkpoint.load(single.folder / "checkpoint.th")["state"]["model"]
    two = checkpoint.load(folder / "checkpoint.th")["state"]["model"]
    for key, value in one.items():  # 5 updates with noise drawn per sample
        torch.testing.assert_close(two[key], value, rtol=1e-5, atol=1e-7)
    # the noise moved the weights: without it they differ
    plain = make_solver(*overrides[1:], "solver=noisy_solver", "toy.noise=0.0")
    plain.run()
    assert not torch.allclose(plain.model.state_dict()["0.weight"], one["0.weight"])

    def marker(base, stage):
        return json.loads((base / "stages" / f"{stage}_1.json").read_text())

    assert marker(single.folder, "evaluate")["items"] == marker(folder, "evaluate")["items"] == 16
    assert marker(folder, "generate")["files"] == 4  # 2 per rank: summed, not averaged
    written = sorted(p.name for p in (folder / "samples" / "epoch_1").glob("*.th"))
    assert written == ["pred_r0_0.th", "pred_r0_1.th", "pred_r1_0.th", "pred_r1_1.th"]
