"""The synthetic demo corpus: deterministic files, classes, sidecars, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from audioflow.data.manifest import read_manifest
from audioflow.data.synth import CLASSES, synth_clip, write_corpus


def test_clips_are_deterministic_and_in_range():
    for index in range(8):
        wav, label, text = synth_clip(5, index)
        again, _, _ = synth_clip(5, index)
        assert np.array_equal(wav, again)
        assert label == CLASSES[index % 4]
        assert 2.0 <= len(wav) / 16000 <= 4.0
        assert 0.5 <= np.abs(wav).max() <= 0.9 and np.isfinite(wav).all()
        assert (text is not None) == (label == "speech")
    assert not np.array_equal(synth_clip(5, 0)[0][:1000], synth_clip(6, 0)[0][:1000])


def test_classes_sound_different():
    """Crude but real: spectral centroids separate noise bursts from tones."""

    def centroid(wav):
        mag = np.abs(np.fft.rfft(wav))
        return (mag * np.fft.rfftfreq(len(wav), 1 / 16000)).sum() / mag.sum()

    tones = [centroid(synth_clip(0, i)[0]) for i in range(0, 40, 4)]
    speech = [centroid(synth_clip(0, i)[0]) for i in range(3, 40, 4)]
    assert np.median(speech) > np.median(tones)


def test_corpus_files_and_sidecars(tmp_path):
    files = write_corpus(tmp_path, 5, seed=9)
    assert [f.name for f in files] == [
        "00000_tone.flac", "00001_chirp.flac", "00002_noise.flac", "00003_speech.flac",
        "00004_tone.flac",
    ]  # fmt: skip
    info = sf.info(files[3])
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
    assert json.loads(Path(str(files[3]) + ".json").read_text()) == {"class": "speech"}
    assert Path(str(files[3]) + ".txt").read_text().strip() == synth_clip(9, 3)[2]
    decoded, _ = sf.read(files[0], dtype="float32")
    assert np.abs(decoded - synth_clip(9, 0)[0]).max() < 1e-4  # 16-bit quantisation


def test_cli_builds_corpus_with_manifest_and_refuses_to_clobber(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = tmp_path / "synth" / "train"
    cmd = ["audioflow", "synth", str(out), "--n", "8", "--seed", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    entries = read_manifest(out / "manifest.jsonl.gz")
    assert len(entries) == 8 and {e["class"] for e in entries} == set(CLASSES)
    assert all(e["sample_rate"] == 16000 and 2.0 <= e["duration"] <= 4.0 for e in entries)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "pass --force" in again.stderr
    forced = subprocess.run(cmd + ["--force"], capture_output=True, text=True, env=env)
    assert forced.returncode == 0
    # Same audio and sizes; only mtimes differ between the two builds.
    strip = [{k: v for k, v in e.items() if k != "mtime"} for e in entries]
    assert strip == [
        {k: v for k, v in e.items() if k != "mtime"}
        for e in read_manifest(out / "manifest.jsonl.gz")
    ]
    assert not list(tmp_path.joinpath("synth").glob(".train.tmp-*"))


def test_rebuilt_corpus_gives_a_byte_identical_manifest(tmp_path):
    from audioflow.data.manifest import build_manifest
    from audioflow.data.synth import write_corpus

    digests = []
    for attempt in range(2):
        root = tmp_path / "corpus"
        if root.exists():
            shutil.rmtree(root)
        write_corpus(root, n=3, seed=7)
        out = tmp_path / f"manifest_{attempt}.jsonl.gz"
        build_manifest([root], out)
        digests.append(hashlib.md5(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
