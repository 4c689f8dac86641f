"""The `audioflow` entry point: help, unknown commands, lazy imports."""

import subprocess
import sys

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
