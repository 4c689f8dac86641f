"""A tiny real codec package for the LM tests, loaded by ``audioflow.models.load_codec``.

The package is a real EncodecModel (50 frames/s at 16 kHz, 4 codebooks of 64 codes)
written by ``audioflow.models.package.write_package``; its quantizer is initialised by
one forward pass in train mode (k-means on real synth audio), so that its codes vary.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from audioflow.data.synth import synth_clip

RATIOS = [8, 5, 4, 2]  # hop 320: 50 frames/s at 16 kHz


def write_codec_package(folder: Path, seed: int = 0, n_q: int = 4, bins: int = 64) -> Path:
    """Write a tiny codec package at ``folder`` (replacing one there)."""
    from audioflow.config import compose
    from audioflow.models.builders import build_compression_model
    from audioflow.models.package import write_package

    cfg = compose(
        [
            "solver=compression/debug",
            f"seanet.ratios={RATIOS}",
            f"rvq.n_q={n_q}",
            f"rvq.bins={bins}",
            "rvq.q_dropout=false",
        ]
    )
    torch.manual_seed(seed)
    model = build_compression_model(cfg)
    clips = [torch.from_numpy(synth_clip(seed, i)[0][:32000]) for i in range(8)]
    model.train()
    model(torch.stack(clips)[:, None])  # k-means initialisation of every codebook
    metadata = {"signature": f"{seed:08x}", "solver": "compression"}
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return write_package(folder, model.state_dict(), resolved, metadata, overwrite=True)
