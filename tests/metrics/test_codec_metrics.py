"""SI-SNR, mel distance and bitrate."""

import pytest
import torch

from audioflow.metrics.codec import MelDistance, bitrate_kbps, si_snr, si_snr_items


def test_si_snr_is_scale_invariant_and_tracks_noise():
    torch.manual_seed(0)
    ref = torch.randn(3, 1, 4000)
    assert si_snr(0.3 * ref, ref).item() > 60
    noise = torch.randn_like(ref)
    # noise at 1/10 amplitude: about 20 dB
    assert si_snr(ref + 0.1 * noise, ref).item() == pytest.approx(20, abs=1.0)
    assert si_snr(ref + noise, ref).item() == pytest.approx(0, abs=1.0)


def test_si_snr_leaves_silent_items_out():
    torch.manual_seed(0)
    ref = torch.randn(2, 1, 4000)
    ref[1] = 0
    est = ref + 0.1 * torch.randn_like(ref)
    assert si_snr_items(est, ref)[1].item() < -50
    assert si_snr(est, ref).item() == pytest.approx(20, abs=1.0)
    assert torch.isnan(si_snr(est[1:], ref[1:]))


def test_mel_distance_orders_reconstructions():
    torch.manual_seed(0)
    ref = torch.randn(2, 1, 8000)
    metric = MelDistance(16000)
    assert metric(ref, ref).item() == 0
    assert metric(ref + 0.01 * torch.randn_like(ref), ref) < metric(torch.randn_like(ref), ref)


def test_bitrate():
    # EnCodec 24 kHz: 75 frames/s, 1024 codes, 8 codebooks = 6 kbps
    assert bitrate_kbps(8, 1024, 75) == pytest.approx(6.0)
