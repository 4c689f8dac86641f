"""A tiny real codec package for the LM tests, and a loader with the codec reference API.

The package is a real EncodecModel (50 frames/s at 16 kHz, 4 codebooks of 64 codes)
written by ``audioflow.models.package.write_package``; its quantizer is initialised by
one forward pass in train mode (k-means on real synth audio), so its codes vary. Until
``audioflow.models.load_codec`` exists, :func:`load_codec` here stands in for it with the
same interface (contract, lineage, content hash, encode/decode, require).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from audioflow.data.synth import synth_clip

RATIOS = [8, 5, 4, 2]  # hop 320: 50 frames/s at 16 kHz


@dataclass(frozen=True)
class CodecContract:
    sample_rate: int
    channels: int
    frame_rate: float
    n_q: int
    cardinality: int
    bandwidths: tuple[float, ...]


class CodecContractError(ValueError):
    pass


class LoadedCodec:
    def __init__(self, model, metadata: dict, content_hash: str, source: str):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.contract = CodecContract(
            model.sample_rate,
            model.channels,
            float(model.frame_rate),
            model.total_codebooks,
            model.cardinality,
            tuple(model.bandwidths()),
        )
        self.lineage = {"signature": metadata.get("signature"), "config": None}
        self.content_hash, self.source = content_hash, source

    @torch.no_grad()
    def encode(self, wav):
        return self.model.encode(wav)

    @torch.no_grad()
    def decode(self, codes):
        return self.model.decode(codes)

    def require(self, *, n_q=None, card=None, sample_rate=None, channels=None) -> None:
        c, src = self.contract, self.source
        if n_q is not None and not 1 <= int(n_q) <= c.n_q:
            raise CodecContractError(
                f"codec {src} has {c.n_q} codebooks; n_q={n_q} asks for "
                f"{'more' if int(n_q) > c.n_q else 'none'}: choose n_q in [1, {c.n_q}] or "
                "another codec"
            )
        if card is not None and int(card) != c.cardinality:
            raise CodecContractError(
                f"codec {src} has {c.cardinality} codes per codebook; card={card} does not "
                f"match: set card={c.cardinality} or use another codec"
            )
        if sample_rate is not None and int(sample_rate) != c.sample_rate:
            raise CodecContractError(
                f"codec {src} runs at {c.sample_rate} Hz; sample_rate={sample_rate} does not "
                f"match: set sample_rate={c.sample_rate} or use another codec"
            )
        if channels is not None and int(channels) != c.channels:
            raise CodecContractError(
                f"codec {src} has {c.channels} channel(s); channels={channels} does not match: "
                f"set channels={c.channels} or use another codec"
            )


def content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_codec(ref, device="cpu"):
    from audioflow.config.paths import resolve_path
    from audioflow.models.package import load_package

    folder = resolve_path(str(ref))
    model, metadata = load_package(folder, device)
    return LoadedCodec(model, metadata, content_hash(folder), str(ref))


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
