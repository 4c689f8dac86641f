"""The unchanged-rescan shortcut: taken only when the walk matches the last scan exactly."""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from pathlib import Path

import pytest

from audioflow.data import scan_state
from audioflow.data.manifest import build_manifest, default_rejects_path, read_manifest

from .audio_files import age_tree, copy_tree


@pytest.fixture
def scanned(corpus, tmp_path):
    """A copy of the corpus, scanned once; the second scan took the shortcut."""
    root = copy_tree(corpus, tmp_path / "c")
    out = tmp_path / "m" / "manifest.jsonl.gz"
    build_manifest([root], out, workers=1)
    assert build_manifest([root], out, workers=1).unchanged
    return root, out


def _mtime(path):
    return path.stat().st_mtime_ns


def test_state_lives_in_the_cache_folder_not_beside_the_data(scanned, tmp_path):
    root, out = scanned
    state = scan_state.state_path(out)
    assert state.is_file()
    assert str(state).startswith(os.environ["AUDIOFLOW_CACHE_DIR"])
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, default_rejects_path(out).name]
    )


def test_touched_file_is_probed_again(scanned):
    root, out = scanned
    path = root / "pcm16.wav"
    os.utime(path, (time.time() - 100, time.time() - 100))  # content same, mtime moved
    report = build_manifest([root], out, workers=1)
    assert not report.unchanged and report.probed >= 1
    entry = next(e for e in read_manifest(out) if e["path"] == str(path))
    assert entry["mtime"] == path.stat().st_mtime


def test_edited_sidecar_is_read_again(scanned):
    root, out = scanned
    sidecar = root / "pcm16.wav.txt"
    when = sidecar.stat().st_mtime - 50  # an old mtime, and only the sidecar's moves
    sidecar.write_text("a new label\n")
    os.utime(sidecar, (when, when))
    report = build_manifest([root], out, workers=1)
    assert not report.unchanged
    entry = next(e for e in read_manifest(out) if e["path"] == str(root / "pcm16.wav"))
    assert entry["text"] == "a new label"
    assert build_manifest([root], out, workers=1).unchanged  # settled again


def test_added_and_removed_files_change_the_walk(scanned):
    root, out = scanned
    (root / "quad.wav").unlink()
    report = build_manifest([root], out, workers=1)
    assert not report.unchanged
    assert all(not e["path"].endswith("quad.wav") for e in read_manifest(out))


def test_manifest_edited_by_hand_is_rebuilt(scanned):
    root, out = scanned
    good = out.read_bytes()
    with gzip.open(out, "wt") as f:
        f.write('{"path": "x.wav"}\n')
    report = build_manifest([root], out, workers=1)
    assert not report.unchanged
    assert out.read_bytes() == good


def test_deleted_rejects_file_is_written_again(scanned):
    root, out = scanned
    rejects = default_rejects_path(out)
    text = rejects.read_text()
    rejects.unlink()
    report = build_manifest([root], out, workers=1)
    assert not report.unchanged
    assert rejects.read_text() == text


def test_other_options_or_previous_manifest_take_the_full_path(scanned, tmp_path):
    root, out = scanned
    assert not build_manifest([root], out, workers=1, check_tail=True).unchanged
    assert build_manifest([root], out, workers=1, check_tail=True).unchanged
    assert not build_manifest([root], out, workers=1, exclude=["*.mp3"]).unchanged
    other = tmp_path / "other.jsonl.gz"
    report = build_manifest([root], other, workers=1, previous=out)
    assert not report.unchanged and report.probed > 0  # rejects are probed, entries reused
    assert not build_manifest([root], out, workers=1, reuse=False).unchanged


def test_state_of_another_output_does_not_apply(scanned, tmp_path):
    root, out = scanned
    moved = tmp_path / "moved" / "manifest.jsonl.gz"
    moved.parent.mkdir()
    os.replace(out, moved)
    os.replace(default_rejects_path(out), default_rejects_path(moved))
    assert not build_manifest([root], moved, workers=1).unchanged


def test_unwritable_cache_only_costs_the_shortcut(corpus, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    monkeypatch.setenv("AUDIOFLOW_CACHE_DIR", str(blocker))
    root = copy_tree(corpus, tmp_path / "c")
    out = tmp_path / "manifest.jsonl.gz"
    first = build_manifest([root], out, workers=1)
    again = build_manifest([root], out, workers=1)
    assert not again.unchanged and again.reused == first.entries
    assert blocker.read_text().startswith("a file")
    assert not list(tmp_path.glob(".*.tmp"))


def test_corrupt_state_is_ignored(scanned):
    root, out = scanned
    scan_state.state_path(out).write_text("{not json")
    assert not build_manifest([root], out, workers=1).unchanged
    assert build_manifest([root], out, workers=1).unchanged


@pytest.mark.parametrize("fresh", ["pcm16.wav", "pcm16.wav.txt"])
def test_fresh_files_record_no_shortcut(corpus, tmp_path, fresh):
    root = copy_tree(corpus, tmp_path / "c")
    (root / fresh).touch()  # modified now: may change again within one mtime tick
    out = tmp_path / "manifest.jsonl.gz"
    build_manifest([root], out, workers=1)
    assert not scan_state.state_path(out).exists()
    assert not build_manifest([root], out, workers=1).unchanged
    age_tree(root)
    build_manifest([root], out, workers=1)
    assert build_manifest([root], out, workers=1).unchanged


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("AUDIOFLOW_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert scan_state.cache_dir() == tmp_path / "xdg" / "audioflow"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert scan_state.cache_dir() == tmp_path / "home" / ".cache" / "audioflow"
    monkeypatch.setattr(scan_state.os.path, "expanduser", lambda path: path)  # no home at all
    assert scan_state.cache_dir() == Path(tempfile.gettempdir()) / "audioflow"
