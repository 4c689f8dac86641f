"""Manifest scanning on real files: fields, sidecars, rejects, paths, determinism, reuse."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflow.data.manifest import build_manifest, default_rejects_path, read_manifest

from .audio_files import BROKEN, FORMATS, copy_tree


def _by_name(entries):
    return {Path(e["path"]).name: e for e in entries}


def test_fields_match_every_format(corpus, tmp_path):
    out = tmp_path / "m" / "manifest.jsonl.gz"
    report = build_manifest([corpus], out, workers=1, check_tail=True)
    entries = _by_name(read_manifest(out))
    assert set(entries) == set(FORMATS)
    assert report.entries == len(FORMATS) and report.probed == len(FORMATS) + len(BROKEN)
    for name, (fmt, subtype, rate, channels, frames) in FORMATS.items():
        e = entries[name]
        decoded, decoded_rate = sf.read(e["path"], always_2d=True)
        assert (e["sample_rate"], e["channels"], e["frames"]) == (rate, channels, frames)
        assert decoded.shape == (frames, channels) and decoded_rate == rate
        assert e["duration"] == pytest.approx(frames / rate)
        assert (e["format"], e["subtype"]) == (fmt, subtype)
        st = os.stat(e["path"])
        assert e["size"] == st.st_size and e["mtime"] == st.st_mtime


def test_sidecars_merge_and_core_keys_win(corpus, tmp_path):
    out = tmp_path / "manifest.jsonl.gz"
    build_manifest([corpus], out, workers=1, check_tail=True)
    entries = _by_name(read_manifest(out))
    assert entries["pcm16.wav"]["speaker"] == "s1"
    assert entries["pcm16.wav"]["weight"] == 2.0
    assert entries["pcm16.wav"]["text"] == "hello world"
    assert entries["vorbis.ogg"]["labels"] == ["tone"]
    assert entries["vorbis.ogg"]["duration"] == pytest.approx(1.5)  # sidecar -1 ignored
    assert "text" not in entries["pcm24.wav"]


def test_rejects_have_reasons_and_never_stop_the_scan(corpus, tmp_path):
    out = tmp_path / "manifest.jsonl.gz"
    report = build_manifest([corpus], out, workers=1, check_tail=True)
    reasons = {Path(p).name: r for p, r in report.rejects}
    assert set(reasons) == set(BROKEN)
    for name, prefix in BROKEN.items():
        assert reasons[name].startswith(prefix), (name, reasons[name])
    assert report.rejects_file == default_rejects_path(out)
    lines = [json.loads(x) for x in report.rejects_file.read_text().splitlines()]
    assert {Path(x["path"]).name for x in lines} == set(BROKEN)
    assert all(x["reason"] for x in lines)


def test_bad_sidecar_is_a_reject(corpus, tmp_path):
    root = copy_tree(corpus, tmp_path / "c")
    (root / "pcm32.wav.json").write_text("{not json")
    report = build_manifest([root], tmp_path / "m.jsonl.gz", workers=1, check_tail=True)
    reasons = dict((Path(p).name, r) for p, r in report.rejects)
    assert reasons["pcm32.wav"].startswith("sidecar pcm32.wav.json: invalid JSON")


def test_paths_relative_under_manifest_folder_else_absolute(corpus, tmp_path):
    inside = corpus / "manifest.jsonl.gz"
    build_manifest([corpus], inside, workers=1)
    with gzip.open(inside, "rt") as f:
        raw = [json.loads(line)["path"] for line in f]
    assert "sub/lossless.flac" in raw and all(not os.path.isabs(p) for p in raw)
    assert raw == sorted(raw)
    outside = tmp_path / "elsewhere" / "manifest.jsonl.gz"
    build_manifest([corpus / "sub"], outside, workers=1)
    with gzip.open(outside, "rt") as f:
        assert [json.loads(line)["path"] for line in f] == [str(corpus / "sub/lossless.flac")]
    inside.unlink()
    default_rejects_path(inside).unlink()


def test_output_is_byte_identical_and_workers_agree(corpus, tmp_path):
    a, b = tmp_path / "a" / "m.jsonl.gz", tmp_path / "b" / "m.jsonl.gz"
    build_manifest([corpus], a, workers=1, reuse=False, check_tail=True)
    build_manifest([corpus], b, workers=2, reuse=False, check_tail=True)
    # The pool path only kicks in for many files; force it with a low threshold.
    import audioflow.data.manifest as manifest_mod

    c = tmp_path / "c" / "m.jsonl.gz"
    old = manifest_mod._MIN_FILES_FOR_POOL
    manifest_mod._MIN_FILES_FOR_POOL = 1
    try:
        build_manifest([corpus], c, workers=2, reuse=False, check_tail=True)
    finally:
        manifest_mod._MIN_FILES_FOR_POOL = old
    # Paths are absolute here (corpus is outside), so the bytes can be compared directly.
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime field


def test_rescan_reuses_unchanged_and_probes_changed(corpus, tmp_path):
    root = copy_tree(corpus, tmp_path / "c")
    out = root / "manifest.jsonl.gz"
    first = build_manifest([root], out, workers=1, check_tail=True)
    before, stamp = out.read_bytes(), out.stat().st_mtime_ns
    # Nothing changed: the walk alone decides; no header is read, nothing is written.
    again = build_manifest([root], out, workers=1, check_tail=True)
    assert again.unchanged and not first.unchanged
    assert (again.entries, again.reused, again.probed) == (first.entries, first.entries, 0)
    assert again.rejects == first.rejects
    assert out.read_bytes() == before and out.stat().st_mtime_ns == stamp
    # Rewrite one file with other content: new size -> probed again, new fields.
    sf.write(root / "pcm32.wav", np.zeros((8000, 1)), 8000, subtype="PCM_16")
    (root / "pcm16.wav.txt").write_text("edited label\n")  # sidecar-only edit
    third = build_manifest([root], out, workers=1, check_tail=True)
    assert not third.unchanged
    assert (third.reused, third.probed) == (first.entries - 1, 1 + len(BROKEN))
    entries = _by_name(read_manifest(out))
    assert entries["pcm32.wav"]["frames"] == 8000
    assert entries["pcm32.wav"]["subtype"] == "PCM_16"
    assert entries["pcm16.wav"]["text"] == "edited label"
    # pcm32.wav was written a moment ago and could change again within one mtime tick:
    # the next rescan does not trust the walk alone (rejects are probed again).
    fourth = build_manifest([root], out, workers=1, check_tail=True)
    assert not fourth.unchanged
    assert (fourth.reused, fourth.probed) == (first.entries, len(BROKEN))
    full = build_manifest([root], out, workers=1, reuse=False, check_tail=True)
    assert full.reused == 0 and not full.unchanged


def test_include_exclude_and_links(corpus, tmp_path):
    root = tmp_path / "linked"
    root.mkdir()
    (root / "all").symlink_to(corpus, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # a cycle must not hang
    out = tmp_path / "m.jsonl.gz"
    report = build_manifest([root], out, include=["*.wav"], exclude=["*/float.wav"], workers=1)
    names = set(_by_name(read_manifest(out)))
    assert names == {"pcm16.wav", "pcm24.wav", "pcm32.wav", "quad.wav"}
    assert {Path(p).name for p, _ in report.rejects} == {
        "empty.wav", "header_only.wav", "cut_body.wav", "notes.wav"
    }  # fmt: skip
    # Walked paths keep the link name (stable across mounts), not the link target.
    assert all("/linked/all/" in e["path"] for e in read_manifest(out))


def test_no_usable_file_writes_no_manifest(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"")
    out = tmp_path / "m.jsonl.gz"
    with pytest.raises(ValueError, match="none of the 1 files found is usable"):
        build_manifest([tmp_path], out, workers=1)
    assert not out.exists() and default_rejects_path(out).exists()


def test_cli_writes_manifest_and_reports_errors(corpus, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = tmp_path / "cli" / "manifest.jsonl.gz"
    rejects = tmp_path / "cli" / "bad.jsonl"
    cmd = ["audioflow", "manifest", str(corpus), "-o", str(out), "--rejects", str(rejects)]
    cmd.append("--check-tail")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{len(FORMATS)} files" in done.stdout and f"{len(BROKEN)} rejected" in done.stdout
    assert len(rejects.read_text().splitlines()) == len(BROKEN)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert f"{len(FORMATS)} files (unchanged since the last scan)" in again.stdout
    assert f"{len(BROKEN)} rejected" in again.stdout
    missing = subprocess.run(
        ["audioflow", "manifest", str(tmp_path / "nope"), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 2
    assert "nope: no such file or folder" in missing.stderr


def test_read_manifest_names_the_bad_line(tmp_path):
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"path": "a.wav", "duration": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2 is not a manifest line"):
        read_manifest(bad)
    bad.write_text('{"path": "a.wav"}\n{"path": \n')
    with pytest.raises(ValueError, match="line 2 is not a manifest line"):
        read_manifest(bad)
    bad.write_text('{"path": "a.wav"}\n{"path": "/abs/b.wav"}\n')
    assert [e["path"] for e in read_manifest(bad)] == [str(tmp_path / "a.wav"), "/abs/b.wav"]


def test_header_probe_accepts_cut_flac_and_tail_check_rejects_it(corpus, tmp_path):
    from audioflow.data.dataset import AudioDataset

    out = tmp_path / "m.jsonl.gz"
    report = build_manifest([corpus], out, workers=1)  # default: headers only
    assert "cut_body.flac" not in {Path(p).name for p, _ in report.rejects}
    cut = [e for e in read_manifest(out) if e["path"].endswith("cut_body.flac")]
    assert cut and cut[0]["frames"] == FORMATS["lossless.flac"][4]  # header is intact
    ds = AudioDataset(cut, sample_rate=22050, channels=2, segment_duration=0.2)
    late = next(i for i in range(100) if ds.draw(0, i)[1] > 0.5)  # past the data left
    with pytest.raises(RuntimeError, match=r"cut_body.flac: cannot read .* --check-tail"):
        ds[late]
    tail = build_manifest([corpus], out, workers=1, check_tail=True, reuse=False)
    assert "cut_body.flac" in {Path(p).name for p, _ in tail.rejects}


def test_progress_bar_only_when_asked_or_on_a_terminal(corpus, tmp_path, capfd):
    build_manifest([corpus], tmp_path / "a.jsonl.gz", workers=1)  # stderr is not a TTY here
    assert "file" not in capfd.readouterr().err
    build_manifest([corpus], tmp_path / "b.jsonl.gz", workers=1, progress=True)
    assert f"{len(FORMATS) + len(BROKEN)}/{len(FORMATS) + len(BROKEN)}" in capfd.readouterr().err


@pytest.mark.parametrize("fmt", ["WAV", "AIFF", "AU", "W64", "RF64"])
def test_pcm_containers_cut_short_are_rejected(tmp_path, fmt):
    path = tmp_path / f"cut.{fmt.lower()}"
    whole = tmp_path / f"whole.{fmt.lower()}"
    sf.write(whole, np.zeros((48000, 1), "f4"), 16000, format=fmt, subtype="PCM_16")
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 10])
    whole.unlink()
    sf.write(tmp_path / "good.wav", np.zeros(1600, "f4"), 16000)
    report = build_manifest([tmp_path], tmp_path / "m.jsonl.gz", workers=1)
    assert report.entries == 1
    ((_, reason),) = report.rejects
    assert reason.startswith("truncated: header declares") and "file has" in reason


def test_streamed_wav_with_placeholder_sizes_is_read(tmp_path):
    """ffmpeg writing to a pipe cannot go back to fill in the sizes: it leaves 0xFFFFFFFF."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(32000, "f4"), 16000, subtype="PCM_16")
    data = bytearray(whole.read_bytes())
    data[4:8] = b"\xff\xff\xff\xff"
    at = data.find(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    whole.unlink()
    out = tmp_path / "m.jsonl.gz"
    report = build_manifest([streamed], out, workers=1)
    assert report.rejects == []
    assert read_manifest(out)[0]["frames"] == 32000


def test_a_file_name_that_is_not_utf8_is_a_reject_not_a_stop(tmp_path):
    root = tmp_path / "audio"
    root.mkdir()
    sf.write(root / "good.wav", np.zeros(1600, "f4"), 16000)
    bad = os.path.join(os.fsencode(root), b"caf\xe9.wav")  # a Latin-1 name
    with open(bad, "wb") as f:
        f.write((root / "good.wav").read_bytes())
    out = tmp_path / "m.jsonl.gz"
    for _ in range(2):  # the rescan agrees
        report = build_manifest([root], out, workers=1)
        assert report.entries == 1
        ((shown, reason),) = report.rejects
        assert shown.endswith("caf\\xe9.wav") and reason.startswith("bad name: ")
    assert "caf\\\\xe9.wav" in default_rejects_path(out).read_text()


def test_output_or_rejects_naming_a_folder_is_refused_before_scanning(corpus, tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(ValueError, match="taken: is a folder; give the path of the manifest"):
        build_manifest([corpus], folder, workers=1)
    with pytest.raises(ValueError, match="is a folder; give the path of the rejects file"):
        build_manifest([corpus], tmp_path / "m.jsonl.gz", rejects=folder, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert list(folder.iterdir()) == []
