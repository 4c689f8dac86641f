"""Segment reads by seeking, channel conversion and cached resampling on real files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from audioflow.data import audio
from audioflow.data.audio import (
    convert_channels,
    read_frames,
    read_segment,
    resample,
    write_audio_file,
)

from .audio_files import FORMATS


def _path(corpus, name):
    return corpus / "sub" / name if name == "lossless.flac" else corpus / name


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_seeked_frames_equal_slice_of_full_decode(corpus, name):
    path = _path(corpus, name)
    full, _ = sf.read(path, dtype="float32", always_2d=True)  # (T, C)
    start, frames = len(full) // 3, len(full) // 4
    seg = read_frames(str(path), start, frames)  # (C, T)
    assert seg.shape == (full.shape[1], frames)
    assert torch.equal(torch.from_numpy(seg), torch.from_numpy(full[start : start + frames].T))
    tail = read_frames(str(path), len(full) - 10, 100)  # past the end: short, not an error
    assert tail.shape[1] == 10


def test_read_segment_seconds_at_file_rate(corpus):
    path = corpus / "pcm24.wav"  # 44.1 kHz stereo
    full, rate = sf.read(path, dtype="float32", always_2d=True)
    seg = read_segment(str(path), 0.25, 0.1, sample_rate=rate, channels=2)
    start = int(0.25 * rate)
    assert torch.equal(seg, torch.from_numpy(full[start : start + seg.shape[1]].T.copy()))
    assert seg.shape == (2, round(0.1 * rate))


def test_read_segment_resamples_and_downmixes(corpus):
    path = corpus / "float.wav"  # 48 kHz stereo
    seg = read_segment(str(path), 0.2, 0.25, sample_rate=16000, channels=1)
    assert seg.shape == (1, 4000)
    full, rate = sf.read(path, dtype="float32", always_2d=True)
    start, stop = int(0.2 * rate), int(0.2 * rate) + int(0.25 * rate)
    ref = torchaudio.functional.resample(torch.from_numpy(full[start:stop].T.copy()), rate, 16000)
    assert torch.allclose(seg, ref.mean(dim=0, keepdim=True), atol=1e-5)


def test_convert_channels():
    wav = torch.stack([torch.ones(5), 3 * torch.ones(5), 5 * torch.ones(5)])  # (3, T)
    assert torch.equal(convert_channels(wav, 1), 3 * torch.ones(1, 5))
    assert torch.equal(convert_channels(wav, 2), wav[:2])
    mono = torch.arange(4.0)[None]
    assert torch.equal(convert_channels(mono, 2), torch.stack([torch.arange(4.0)] * 2))
    with pytest.raises(ValueError, match="cannot convert 2-channel audio to 4 channels"):
        convert_channels(wav[:2], 4)


def test_resample_matches_torchaudio_and_is_cached():
    wav = torch.randn(2, 4410)
    out = resample(wav, 44100, 16000)
    assert torch.allclose(out, torchaudio.functional.resample(wav, 44100, 16000), atol=1e-5)
    assert out.shape == (2, 1600)
    assert resample(wav, 16000, 16000) is wav
    before = audio._resampler.cache_info().hits
    resample(wav, 44100, 16000)
    assert audio._resampler.cache_info().hits == before + 1


def test_long_ogg_is_written_in_blocks_without_crashing(tmp_path):
    # One libsndfile call with minutes of Vorbis audio overflows libvorbis' stack (a
    # segfault); run in a child so that a regression fails this test, not the session.
    out = tmp_path / "long.ogg"
    code = (
        "import numpy as np, sys\n"
        "from audioflow.data.audio import write_audio_file\n"
        "x = 0.1 * np.random.default_rng(0).standard_normal(16000 * 150).astype('f4')\n"
        "write_audio_file(sys.argv[1], x, 16000)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    info = sf.info(out)
    assert (info.format, info.samplerate, info.channels) == ("OGG", 16000, 1)
    assert abs(info.frames - 16000 * 150) <= 16000  # Vorbis may pad the last block


def test_write_names_an_unknown_extension_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"no audio format for '\.xyz'"):
        write_audio_file(tmp_path / "out.xyz", np.zeros(100, "f4"), 16000)
    with pytest.raises(ValueError, match="WAV cannot hold VORBIS"):
        write_audio_file(tmp_path / "out.wav", np.zeros(100, "f4"), 16000, subtype="VORBIS")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_the_destination_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "out.wav"
    write_audio_file(out, np.zeros((100, 2), "f4"), 16000, subtype="PCM_16")
    before = out.read_bytes()
    calls = []

    def failing_write(self, data):
        calls.append(len(data))
        raise OSError("disk full")

    monkeypatch.setattr(sf.SoundFile, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_audio_file(out, np.ones((200_000, 2), "f4") * 0.5, 16000)
    assert calls and out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
