"""The listening page's parts (solvers.pages and compression_samples): one dB scale for
every spectrogram, audible clips, levels, the page header and epoch links, and Opus at
the matching bitrate."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from audioflow.metrics import opus
from audioflow.metrics.codec import si_snr_items
from audioflow.solvers import compression_samples as samples
from audioflow.solvers import pages

SR = 16000


def tone(seconds: float = 1.0, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return (amplitude * torch.sin(2 * math.pi * 1000 * t))[None]  # (1, T)


def test_spectrograms_share_one_absolute_scale():
    loud, quiet = pages.spectrogram_db(tone()), pages.spectrogram_db(tone(amplitude=0.1))
    assert loud.max() == pytest.approx(0.0, abs=1.0)  # a full-scale sine peaks at 0 dB
    # 20 dB quieter is 20 dB darker: no per-image normalisation
    assert loud.max() - quiet.max() == pytest.approx(20.0, abs=0.1)


def test_active_fraction_tells_silence_from_sound():
    half = torch.cat([tone(0.5), torch.zeros(1, SR // 2)], dim=1)
    assert pages.active_fraction(tone(), SR) == 1.0
    assert pages.active_fraction(torch.zeros(1, SR), SR) == 0.0
    assert pages.active_fraction(half, SR) == pytest.approx(0.5, abs=0.03)


def test_levels_report_gain_and_dc():
    x = tone()
    out = pages.levels(0.1 * x + 0.03, x)
    assert out["level_db"] == pytest.approx(
        20 * math.log10(math.hypot(0.1 / 2**0.5, 0.03) * 2**0.5), abs=0.05
    )
    assert out["dc"] == pytest.approx(0.03, abs=1e-4)


def test_page_has_header_players_with_length_and_epoch_links(tmp_path):
    root = tmp_path / "samples"
    (root / "epoch_1").mkdir(parents=True)
    (root / "epoch_1" / "index.html").write_text("<html></html>")
    folder = root / "epoch_2"
    folder.mkdir()
    rows = [{"name": "clip", "cells": {"original": ("a.wav", "a.png")}, "notes": {}}]
    header = {
        "signature": "abcd1234",
        "overrides": ["solver=compression/debug", "optim.lr=1e-3"],
        "clip_metrics": {"4.00 kbps": {"sisnr": 3.25, "mel_distance": 1.5}},
    }
    page = samples.write_index(folder, "t", rows, ["original"], header).read_text()
    assert 'preload="metadata"' in page and 'preload="none"' not in page
    assert "abcd1234" in page and "optim.lr=1e-3" in page
    assert '<a href="../epoch_1/index.html">1</a>' in page and "<b>2</b>" in page
    assert "3.25" in page and "mel_distance" in page


def test_align_undoes_a_delay():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000).astype(np.float32)
    delayed = np.concatenate([np.zeros(312, np.float32), x])
    assert np.allclose(opus.align(delayed, x), x)


def test_nearest_bitrate_stays_in_what_libopus_codes():
    assert opus.nearest_bitrate(2.5) == 6.0
    assert opus.nearest_bitrate(11.9) == 12.0
    assert opus.nearest_bitrate(900) == 510.0


@pytest.mark.skipif(shutil.which("opusenc") is None, reason="opus-tools not installed")
def test_opus_roundtrip_is_aligned_and_faithful_at_24_kbps():
    x = 0.5 * tone()[0].numpy()
    y = opus.roundtrip(x, SR, 24)
    assert y.shape == x.shape
    snr = float(si_snr_items(torch.from_numpy(y)[None, None], torch.from_numpy(x)[None, None])[0])
    assert snr > 10.0  # a delay left in would score far below 0 dB
