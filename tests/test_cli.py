"""The `audioflow` entry point: help, unknown commands, lazy imports."""

import signal
import subprocess
import sys
import time

import pytest

from audioflow.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_exits_nonzero():
    proc = subprocess.run(
        [sys.executable, "-m", "audioflow.cli", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


LIGHT_CHECK = """
import sys
from pathlib import Path
{body}
heavy = sorted(m for m in ("torch", "torchaudio") if m in sys.modules)
print("heavy:", heavy)
"""


def _heavy_modules(body: str, tmp_path) -> str:
    env = {"AUDIOFLOW_XP_DIR": str(tmp_path / "xps"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT_CHECK.format(body=body)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_import_config_does_not_import_torch(tmp_path):
    body = "import audioflow.config\nfrom audioflow.config import compose, signature, xp_root"
    assert _heavy_modules(body, tmp_path) == "heavy: []"


def test_light_commands_do_not_import_torch(tmp_path):
    conf = tmp_path / "conf"
    (conf / "arch").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults: [_self_, {arch: a}]\nseed: 1\n")
    (conf / "arch" / "a.yaml").write_text("dim: 1\n")
    body = (
        "from audioflow.cli import main\n"
        f"conf = {str(conf)!r}\n"
        "assert main(['sig', 'seed=2', '--config-dir', conf]) == 0\n"
        "assert main(['info', 'seed=2', '--config-dir', conf]) == 0\n"
        "assert main(['ls']) == 0"
    )
    assert _heavy_modules(body, tmp_path) == "heavy: []"


def _audioflow(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "audioflow.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(15, 143, "terminated"), (2, 130, "interrupted")]
)
def test_a_stopped_command_says_so_and_leaves_no_temporary_files(tmp_path, signum, code, word):
    out = tmp_path / "corpus"
    # SIGINT as a terminal's Ctrl-C finds it: a suite started in the background (`cmd &`)
    # passes it on ignored, and Python then never turns it into KeyboardInterrupt
    proc = _audioflow(
        "synth",
        str(out),
        "--n",
        "5000",
        "--seed",
        "0",
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".corpus.*")):  # the corpus is being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip() == f"audioflow synth: {word}"
    assert list(tmp_path.iterdir()) == []


def test_an_unusable_output_path_is_named_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    proc = _audioflow("synth", str(blocker / "corpus"), "--n", "2")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and str(blocker) in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder\n"


FORKED_CHILD = """
import os, signal, sys, time
from audioflow import cli
cli._OWNER_PID = os.getpid()
signal.signal(signal.SIGTERM, cli._terminate)
pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
time.sleep(0.3)
os.kill(pid, signal.SIGTERM)
_, status = os.waitpid(pid, 0)
print(os.WIFSIGNALED(status) and os.WTERMSIG(status))
"""


def test_a_forked_worker_still_dies_of_sigterm_quietly():
    """Probe-pool and DataLoader workers inherit the handler; they must not raise."""
    done = subprocess.run([sys.executable, "-c", FORKED_CHILD], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "15" and "Traceback" not in done.stderr
