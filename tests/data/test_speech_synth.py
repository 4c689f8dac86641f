"""The spoken demo corpus: espeak-ng utterances with <stem>.txt transcripts, 16 kHz,
audible levels, held-out voices, deterministic rebuilds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflow.cli import main as cli
from audioflow.data.manifest import read_manifest
from audioflow.data.speech_synth import VARIANTS, clip_settings

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (.ci/run installs it)"
)


def test_speech_corpus_has_transcripts_levels_and_held_out_voices(tmp_path):
    out = tmp_path / "test"
    assert cli(["synth", str(out), "--kind", "speech", "--voices", "test", "--n", "12"]) == 0
    entries = read_manifest(out / "manifest.jsonl.gz")
    assert len(entries) == 12
    for entry in entries:
        path = Path(entry["path"])
        assert path.with_suffix(".txt").read_text().strip() == entry["text"]
        assert entry["sample_rate"] == 16000 and entry["channels"] == 1
        settings = json.loads(Path(entry["path"] + ".json").read_text())
        assert settings["voice"].split("+")[1] in VARIANTS["test"]
        wav, _ = sf.read(path)
        peak_db = 20 * np.log10(np.abs(wav).max())
        assert -14 < peak_db < -1, peak_db  # heard, never clipped
        # speech fills the middle: louder than the silences on both sides by far
        frames = wav[: len(wav) // 160 * 160].reshape(-1, 160)
        level = 10 * np.log10((frames**2).mean(1) + 1e-12)
        assert level.max() - min(level[0], level[-1]) > 15
        words = len(entry["text"].split())
        assert 0.15 * words < entry["duration"] < 0.2 + 0.8 * words  # spoken, not garbage
    kinds = {e["kind"] for e in entries}
    assert kinds <= {"digits", "sentence"} and "digits" in kinds
    assert not set(VARIANTS["train"]) & set(VARIANTS["test"])


def test_speech_corpus_is_deterministic(tmp_path):
    for name in ("a", "b"):
        assert cli(["synth", str(tmp_path / name), "--kind", "speech", "--n", "3"]) == 0
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert clip_settings(1, 5, "train") == clip_settings(1, 5, "train")
    assert clip_settings(1, 5, "train") != clip_settings(1, 5, "test")


def test_missing_espeak_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on this PATH
    assert cli(["synth", str(tmp_path / "x"), "--kind", "speech", "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install -y espeak-ng" in err
    assert not (tmp_path / "x").exists()
