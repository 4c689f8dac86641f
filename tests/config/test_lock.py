"""XP locks across real processes: a second holder is refused, a killed one never blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from audioflow.config import XPLockedError, xp_lock
from audioflow.config.lock import held_locks

HOLD = """
import sys, time
from audioflow.config.lock import xp_lock
with xp_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold(folder, name="train") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), name], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_process_is_refused_at_once(tmp_path):
    proc = _hold(tmp_path)
    try:
        start = time.monotonic()
        with pytest.raises(XPLockedError, match=f"pid {proc.pid} holds") as info:
            with xp_lock(tmp_path):
                pass
        assert time.monotonic() - start < 1.0
        assert info.value.exit_code == 2 and tmp_path.name in str(info.value)
        assert held_locks(tmp_path) == ["train"]
        with xp_lock(tmp_path, "valid"):  # another stage of the same XP may run beside it
            pass
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_killed_process_does_not_block(tmp_path):
    proc = _hold(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "locks" / "train.lock").exists()  # the file stays, harmlessly
    assert held_locks(tmp_path) == []
    with xp_lock(tmp_path) as path:
        assert path.read_text().strip() == str(os.getpid())


def test_lock_released_after_block(tmp_path):
    with xp_lock(tmp_path):
        assert held_locks(tmp_path) == ["train"]
    assert held_locks(tmp_path) == []
    with xp_lock(tmp_path):
        pass
