"""Two real processes (torchrun, gloo, CPU) check the group's behaviour under DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cmd = [str(bin_dir / "torchrun"), "--standalone", "--nproc-per-node", "2", str(WORKER)]
    proc = subprocess.run(
        [*cmd, str(out_dir)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]


def test_accumulating_k_micro_batches_equals_one_big_batch(ddp_results):
    for result in ddp_results:
        acc = result["accumulation"]
        assert acc["real_step"] == 2
        assert acc["max_abs_diff_vs_big_batch"] < 1e-6


def test_only_the_last_micro_step_all_reduces(ddp_results):
    for result in ddp_results:
        acc = result["accumulation"]
        # One bucket: exactly one all-reduce per window of 4 micro-steps.
        assert acc["reductions_per_window"] == [1, 1]
        # After the first micro-step each rank still holds its own (unreduced) gradient.
        assert acc["grads_differ_before_sync"] == [True, True]


def test_two_optim_sches_on_a_shared_sub_graph(ddp_results):
    for result in ddp_results:
        two = result["two_optim_sches"]
        assert two["error"] is None  # no "backward through the graph a second time"
        assert two["ranks_identical"]
        # Each module moved by its own loss's gradient, averaged over both ranks.
        assert two["max_abs_diff_vs_reference"] < 1e-6
        assert two["real_steps"] == {"gen": 2, "disc": 2}


def test_parameters_outside_the_forward_with_or_without_find_unused(ddp_results):
    for result in ddp_results:
        for mode, outcome in result["unused_parameters"].items():
            assert outcome["error"] is None, mode
            assert outcome["ranks_identical"], mode
            assert outcome["real_steps"] == {"gen": 2, "disc": 1}, mode


def test_find_unused_parameters_with_a_submodule_called_outside_the_forward(ddp_results):
    for result in ddp_results:
        outside = result["outside_forward"]
        assert outside["error"] is None  # was: "Expected to mark a variable ready only once"
        assert outside["ranks_identical"]
        assert outside["max_abs_diff_vs_reference"] < 1e-6
        assert outside["real_steps"] == {"gen": 2, "disc": 2}
