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
