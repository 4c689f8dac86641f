"""The local launcher: real torchrun processes, exit statuses and option pass-through."""

import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from audioflow.launch.base import CONFIG_ERROR_EXIT_CODE, JobSpec

BIN = Path(sys.executable).parent


def _launch(tmp_path: Path, *args: str) -> tuple[int, str]:
    log = tmp_path / "job.log"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "audioflow"), "launch", "--name", "t", "--log", str(log), "--", *args]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    return done.returncode, log.read_text() if log.exists() else ""


def test_job_options_reach_the_command_even_when_torchrun_knows_a_prefix(tmp_path):
    # `--n` is a prefix of torchrun's `--nnodes`/`--nproc-per-node`: it must reach synth.
    status, log = _launch(tmp_path, "synth", str(tmp_path / "corpus"), "--n", "3", "--seed", "1")
    assert status == 0, log
    assert len(list((tmp_path / "corpus").rglob("*.flac"))) == 3
    first = next((tmp_path / "corpus").rglob("*.flac"))
    assert sf.info(first).samplerate == 16000


def test_config_error_keeps_its_exit_status_and_reaches_the_log(tmp_path):
    status, log = _launch(tmp_path, "run", "solver=compression/debug", "optim.lrr=1")
    assert status == CONFIG_ERROR_EXIT_CODE
    assert "optim.lrr" in log
    assert not (tmp_path / "outputs").exists()


def test_torchrun_command_separates_job_arguments():
    cmd = JobSpec(name="x", args=["synth", "out", "--n", "2"]).torchrun_args()
    module = cmd.index("-m")
    assert cmd[module + 1 : module + 3] == ["audioflow.cli", "--"]
    assert cmd[-4:] == ["synth", "out", "--n", "2"]
