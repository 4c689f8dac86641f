"""Build models from a composed config; the only place in models/ that reads config objects.

Keys (set by config/model/encodec/*.yaml and the compression solver configs):
``compression_model`` (only "encodec"), ``encodec.causal``, ``seanet.*`` (encoder and
decoder arguments), ``rvq.*`` (quantizer arguments), ``msstftd.*`` (discriminator),
plus the global ``sample_rate`` and ``channels``.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from audioflow.models.discriminator import MultiScaleSTFTDiscriminator
from audioflow.models.encodec import EncodecModel
from audioflow.models.quantizer import ResidualVectorQuantizer
from audioflow.models.seanet import SEANetDecoder, SEANetEncoder


def _plain(node: Any) -> dict:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def build_compression_model(cfg: Any) -> EncodecModel:
    """Build the codec named by ``cfg.compression_model``.

    Raises:
        ValueError: unknown ``compression_model``.
    """
    name = cfg.get("compression_model", "encodec")
    if name != "encodec":
        raise ValueError(f"compression_model={name!r} is not known: use compression_model=encodec")
    seanet = _plain(cfg.seanet)
    causal = bool(cfg.get("encodec", {}).get("causal", False))
    seanet.update(channels=int(cfg.channels), causal=causal)
    seanet["ratios"] = tuple(seanet["ratios"])
    encoder = SEANetEncoder(**seanet)
    decoder = SEANetDecoder(**seanet)
    rvq = _plain(cfg.rvq)
    quantizer = ResidualVectorQuantizer(dimension=seanet["dimension"], **rvq)
    return EncodecModel(encoder, quantizer, decoder, int(cfg.sample_rate), int(cfg.channels))


def build_discriminator(cfg: Any) -> MultiScaleSTFTDiscriminator:
    """Build the multi-scale STFT discriminator from ``cfg.msstftd``."""
    kwargs = _plain(cfg.msstftd)
    kwargs["n_ffts"] = tuple(kwargs["n_ffts"])
    kwargs["dilations"] = tuple(kwargs["dilations"])
    return MultiScaleSTFTDiscriminator(channels=int(cfg.channels), **kwargs)
