"""Atomic replacement: old or new content only, and the modes a shared folder needs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audioflow import atomic
from audioflow.data.manifest import build_manifest


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_and_folders_get_the_umask_mode(tmp_path, umask_022):
    atomic.write_text(tmp_path / "a.json", "{}\n")
    assert _mode(tmp_path / "a.json") == 0o644  # not mkstemp's 0600
    folder = atomic.temp_folder_beside(tmp_path / "pkg")
    assert _mode(folder) == 0o755 and folder.name.startswith(".pkg.")


def test_a_replaced_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "a.txt"
    atomic.write_text(path, "old\n")
    os.chmod(path, 0o640)
    atomic.write_text(path, "new\n")
    assert path.read_text() == "new\n" and _mode(path) == 0o640


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    atomic.write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic.replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_manifests_and_synth_corpora_are_readable_by_others(tmp_path, umask_022):
    out = tmp_path / "m.jsonl.gz"
    (tmp_path / "c").mkdir()
    sf.write(tmp_path / "c" / "a.wav", np.zeros(1600), 16000)
    build_manifest([tmp_path / "c"], out, workers=1)
    assert _mode(out) == 0o644
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["audioflow", "synth", str(tmp_path / "synth"), "--n", "2", "--seed", "0"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert _mode(tmp_path / "synth") == 0o755
    assert _mode(tmp_path / "synth" / "manifest.jsonl.gz") == 0o644


def test_a_full_disk_is_one_line_naming_the_folder_and_keeps_the_old_file(small_disk):
    disk = small_disk(64)
    path = disk / "big.bin"
    atomic.write_bytes(path, b"old")
    with pytest.raises(atomic.DiskFullError) as err:
        atomic.write_bytes(path, b"x" * (256 * 1024))
    message = str(err.value)
    assert message.startswith(f"no space left on {disk} (writing big.bin)") and "\n" not in message
    assert err.value.exit_code == 2
    assert path.read_bytes() == b"old" and sorted(p.name for p in disk.iterdir()) == ["big.bin"]


def test_write_json_is_atomic_json(tmp_path):
    atomic.write_json({"b": 1, "a": [1.5]}, tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'


def _temp_of(path, pid: int):
    name = atomic.temp_beside(path).name
    # the writer's host and pid are in the name: .<name>.<host>-<pid>.<hex>.tmp
    head, _, tail = name.rpartition(f"-{os.getpid()}.")
    return path.with_name(f"{head}-{pid}.{tail}")


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    left = _temp_of(tmp_path / "checkpoint.th", dead_pid)
    left.write_bytes(b"")  # what a kill -9 before the first write leaves
    live = _temp_of(tmp_path / "history.json", os.getpid())
    live.write_bytes(b"[]")
    far_fresh = tmp_path / ".best.th.otherpod-7.0a1b2c3d.tmp"
    far_old = tmp_path / ".best.json.otherpod-8.0a1b2c3d.tmp"
    for path in (far_fresh, far_old):
        path.write_bytes(b"")
    os.utime(far_old, (1, 1))
    (tmp_path / ".not-ours.tmp").write_bytes(b"")
    (tmp_path / "stages").mkdir()
    marker_temp = _temp_of(tmp_path / "stages" / "train_1.json", dead_pid)
    marker_temp.write_bytes(b"")
    removed = atomic.remove_stale_temps([tmp_path, tmp_path / "stages", tmp_path / "nope"])
    assert sorted(removed) == sorted([left, far_old, marker_temp])
    assert live.exists() and far_fresh.exists() and (tmp_path / ".not-ours.tmp").exists()
