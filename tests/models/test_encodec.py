"""SEANet codec and discriminator: shapes, causality, encode/decode consistency."""

import pytest
import torch

from audioflow.models.discriminator import MultiScaleSTFTDiscriminator
from audioflow.models.encodec import EncodecModel
from audioflow.models.quantizer import ResidualVectorQuantizer
from audioflow.models.seanet import SEANetDecoder, SEANetEncoder


def tiny_codec(causal: bool = False, lstm: int = 0, channels: int = 1) -> EncodecModel:
    kw = dict(channels=channels, dimension=16, n_filters=4, ratios=(4, 2), causal=causal, lstm=lstm)
    rvq = ResidualVectorQuantizer(dimension=16, n_q=3, bins=16)
    return EncodecModel(SEANetEncoder(**kw), rvq, SEANetDecoder(**kw), 8000, channels)


@pytest.mark.parametrize("length", [800, 801, 37, 5])
@pytest.mark.parametrize("causal", [False, True])
def test_reconstruction_has_input_length(length, causal):
    model = tiny_codec(causal=causal, lstm=1, channels=2)
    out = model(torch.randn(2, 2, length))
    assert out.x.shape == (2, 2, length)
    assert out.codes.shape[0] == 2 and out.codes.shape[-1] == -(-length // 8)


def test_causal_output_ignores_the_future():
    torch.manual_seed(0)
    model = tiny_codec(causal=True).eval()
    x = torch.randn(1, 1, 400)
    y = x.clone()
    y[..., 200:] = torch.randn(1, 1, 200)
    # the encoder is causal: frames before the change are identical
    assert torch.allclose(model.encoder(x)[..., :20], model.encoder(y)[..., :20], atol=1e-6)
    non_causal = tiny_codec(causal=False).eval()
    assert not torch.allclose(non_causal.encoder(x)[..., 20:25], non_causal.encoder(y)[..., 20:25])


def test_encode_decode_matches_forward_in_eval():
    torch.manual_seed(0)
    model = tiny_codec()
    model(torch.randn(4, 1, 800))  # initialise codebooks from data
    model.eval()
    x = torch.randn(2, 1, 800)
    for n in (1, 3):
        model.set_num_codebooks(n)
        codes = model.encode(x)
        assert codes.shape == (2, n, 100)
        assert torch.allclose(model.decode(codes, 800), model(x).x, atol=1e-5)
    assert model.bandwidths() == pytest.approx([4.0, 8.0, 12.0])  # 4 bits * 1000 fps


def test_discriminator_outputs_logits_and_features_per_scale():
    disc = MultiScaleSTFTDiscriminator(channels=1, filters=4, n_ffts=(128, 256))
    logits, fmaps = disc(torch.randn(2, 1, 4000))
    assert len(logits) == len(fmaps) == 2
    assert all(logit.shape[:2] == (2, 1) for logit in logits)
    assert all(len(f) == 5 for f in fmaps)


def test_reconstruct_from_one_encoder_pass_equals_forward_at_each_count():
    torch.manual_seed(0)
    model = tiny_codec()
    model(torch.randn(4, 1, 800))  # initialise codebooks from data
    model.eval()
    x = torch.randn(2, 1, 801)
    out = model.reconstruct(x, [1, 2, 3])
    assert list(out) == [1, 2, 3]
    for n, y in out.items():
        model.set_num_codebooks(n)
        assert torch.equal(y, model(x).x)  # the same operations: bit for bit
    assert not torch.equal(out[1], out[3])
