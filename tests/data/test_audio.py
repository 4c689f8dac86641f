"""Segment reads by seeking, channel conversion and cached resampling on real files."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
import torchaudio

from audioflow.data import audio
from audioflow.data.audio import convert_channels, read_frames, read_segment, resample

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
