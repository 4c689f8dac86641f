"""exit_now: the exit status, atexit handlers, finalizers and buffered output survive."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_exit_now_keeps_status_atexit_work_finalizers_and_buffered_output(tmp_path):
    marker = tmp_path / "atexit.txt"
    script = textwrap.dedent(
        f"""
        import atexit, logging, sys, tempfile
        from audioflow.quick_exit import exit_now

        atexit.register(lambda: open({str(marker)!r}, "w").write("ran"))
        scratch = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})  # a weakref finalizer
        logging.basicConfig(filename={str(tmp_path / "log.txt")!r})
        logging.getLogger().warning("logged")
        print(scratch.name, end="")  # no newline: still in stdout's buffer (a pipe)
        sys.stderr.write("to stderr")
        exit_now(3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3
    assert marker.read_text() == "ran"
    assert proc.stderr == "to stderr"
    assert proc.stdout.startswith(str(tmp_path))
    assert not (tmp_path / proc.stdout).exists()  # the temporary folder was removed
    assert "logged" in (tmp_path / "log.txt").read_text()


def test_the_console_command_exits_with_its_status():
    # `audioflow` runs cli.entry: a usage error is still status 2, its message printed
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audioflow.cli",
            "run",
            "--stage",
            "valid",
            "--epoch",
            "0",
            "solver=lm/debug",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--epoch 0: epochs count from 1" in proc.stderr
