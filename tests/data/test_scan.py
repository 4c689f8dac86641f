"""The folder walk: what it finds, in which order, and what it skips without failing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audioflow.data import scan
from audioflow.data.scan import walk_audio


def _tree(root: Path) -> Path:
    """Names chosen so that sorting by path differs from any listing or visiting order."""
    for rel in [
        "b.wav", "a.wav", "a/z.flac", "a/b/c.mp3", "a.b/x.wav", "A2.WAV", "speaker 2/ü.ogg",
        "a/notes.txt", "a/z.flac.json", "a/z.flac.txt", "odd.wav/inside.wav",
    ]:  # fmt: skip
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}" if rel.endswith(".json") else b"x" * len(rel))
    (root / "gone.wav").symlink_to(root / "missing.wav")  # dangling link: skipped
    return root


def _expected(root: Path) -> list[str]:
    rels = ["b.wav", "a.wav", "a/z.flac", "a/b/c.mp3", "a.b/x.wav", "A2.WAV", "speaker 2/ü.ogg"]
    return sorted(str(root / rel) for rel in rels + ["odd.wav/inside.wav"])


def test_finds_audio_sorted_with_sizes_and_sidecars(tmp_path):
    root = _tree(tmp_path / "data")
    found = walk_audio([root])
    assert [f.path for f in found] == _expected(root)
    by_name = {Path(f.path).name: f for f in found}
    assert by_name["z.flac"].has_json and by_name["z.flac"].has_txt
    assert not by_name["a.wav"].has_json
    for f in found:
        st = os.stat(f.path)
        assert (f.size, f.mtime) == (st.st_size, st.st_mtime)
    # A folder named like audio is walked into, never reported as a file.
    assert str(root / "odd.wav") not in {f.path for f in found}


def test_same_answer_without_folder_descriptors(tmp_path, monkeypatch):
    root = _tree(tmp_path / "data")
    with_fd = walk_audio([root])
    monkeypatch.setattr(scan, "_USE_DIR_FD", False)
    assert walk_audio([root]) == with_fd


def test_file_deleted_between_listing_and_stat_is_dropped(tmp_path, monkeypatch):
    root = _tree(tmp_path / "data")
    real_stat = os.stat

    def vanishing_stat(path, *args, **kwargs):
        if os.fspath(path).endswith("b.wav"):
            raise FileNotFoundError(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(scan.os, "stat", vanishing_stat)
    paths = [f.path for f in walk_audio([root])]
    assert str(root / "b.wav") not in paths
    assert paths == [p for p in _expected(root) if not p.endswith("/b.wav")]


def test_overlapping_roots_and_single_files_give_each_file_once(tmp_path):
    root = _tree(tmp_path / "data")
    found = walk_audio([root, root / "a", root / "a.wav"])
    assert [f.path for f in found] == _expected(root)


def test_missing_root_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such file or folder"):
        walk_audio([tmp_path / "nowhere"])


def test_exclude_by_folder_name_or_by_relative_path(tmp_path):
    for rel in ["noisy/a.wav", "spk1/noisy/b.wav", "spk2/noisy/c.wav", "spk1/clean/d.wav"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    names = {Path(f.path).name for f in walk_audio([tmp_path], exclude=["noisy"])}
    assert names == {"d.wav"}  # every folder named noisy, at any depth
    names = {Path(f.path).name for f in walk_audio([tmp_path], exclude=["spk1/noisy"])}
    assert names == {"a.wav", "c.wav", "d.wav"}  # only that one
