"""`audioflow launch` and `audioflow k8s render` refuse impossible resources and log paths
with one line naming the option, exit 2, before anything runs or is printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioflow.cli import main
from audioflow.launch.base import JobSpec

BIN = Path(sys.executable).parent


def _launch(tmp_path: Path, *options: str) -> list[str]:
    return ["launch", "--name", "t", *options, "--", "synth", str(tmp_path / "corpus"), "--n", "1"]


@pytest.mark.parametrize(
    ("option", "value", "least"),
    [
        ("--nodes", "0", 1),
        ("--nproc-per-node", "0", 1),
        ("--threads", "0", 1),
        ("--gpus", "-1", 0),
        ("--mem-mb", "-5", 1),
    ],
)
def test_launch_refuses_a_resource_below_its_least_value(tmp_path, capsys, option, value, least):
    log = tmp_path / "job.log"
    assert main(_launch(tmp_path, "--log", str(log), option, value)) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"audioflow launch: {option} must be at least {least}, got {value}"]
    assert not log.exists() and not (tmp_path / "corpus").exists()


def test_local_launcher_refuses_several_nodes(tmp_path, capsys):
    assert main(_launch(tmp_path, "--launcher", "local", "--nodes", "2")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("audioflow launch: --nodes 2: the local launcher runs one node")
    assert "--launcher kubernetes" in line


def test_multi_node_torchrun_command_needs_rank_and_master():
    from audioflow.launch.base import JobSpecError

    job = JobSpec(name="x", args=["run"], nodes=2)
    with pytest.raises(JobSpecError, match="--nodes 2: a multi-node job needs"):
        job.torchrun_args()
    cmd = job.torchrun_args(node_rank="1", master="host")
    assert "--node-rank=1" in cmd and "--master-addr=host" in cmd


def test_log_in_a_missing_folder_is_created(tmp_path):
    log = tmp_path / "logs" / "deep" / "job.log"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "audioflow"), *_launch(tmp_path, "--log", str(log))]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + (log.read_text() if log.exists() else "")
    assert log.is_file()
    assert len(list((tmp_path / "corpus").rglob("*.flac"))) == 1


def test_log_that_cannot_be_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    under_file = tmp_path / "afile" / "job.log"
    assert main(_launch(tmp_path, "--log", str(under_file))) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"audioflow launch: --log {under_file}: {tmp_path / 'afile'} is a file, not a folder; "
        "choose another log path"
    ]
    assert main(_launch(tmp_path, "--log", str(tmp_path))) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"audioflow launch: --log {tmp_path}: is a folder; name a file"
    ]
    assert not (tmp_path / "corpus").exists()


def test_k8s_render_refuses_every_bad_value_one_line_each(capsys):
    argv = ["k8s", "render", "deadbeef", "train", "-3", "--gpus", "-1", "--mem-mb", "-5"]
    assert main([*argv, "--nproc-per-node", "-2"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert sorted(out.err.splitlines()) == [
        "audioflow k8s render: --gpus must be at least 0, got -1",
        "audioflow k8s render: --mem-mb must be at least 1, got -5",
        "audioflow k8s render: --nproc-per-node must be at least 1, got -2",
        "audioflow k8s render: epoch must be at least 1, got -3",
    ]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["0"], "epoch must be at least 1, got 0"),
        (["--nproc-per-node", "0"], "--nproc-per-node must be at least 1, got 0"),
        (["--nodes", "0"], "--nodes must be at least 1, got 0"),
        (["--threads", "0"], "--threads must be at least 1, got 0"),
    ],
)
def test_k8s_render_zero_is_refused_not_defaulted(capsys, argv, line):
    assert main(["k8s", "render", "deadbeef", "train", *argv]) == 2
    assert capsys.readouterr().err.splitlines() == [f"audioflow k8s render: {line}"]
