"""audioflow.data: manifests (and speech corpus importers), segment and utterance datasets,
samplers, tokenizers, the synthetic and spoken demo corpora.

``AudioDataset``, ``collate`` and ``TrainSampler`` import torch, so they are loaded on
first use: scanning a manifest (``audioflow.data.manifest``) stays torch-free.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "AudioDataset": "audioflow.data.dataset",
    "collate": "audioflow.data.dataset",
    "TrainSampler": "audioflow.data.samplers",
    "BucketBatchSampler": "audioflow.data.samplers",
    "SpeechDataset": "audioflow.data.speech",
    "import_corpus": "audioflow.data.corpora",
    "build_audio_loaders": "audioflow.data.builders",
    "build_manifest": "audioflow.data.manifest",
    "read_manifest": "audioflow.data.manifest",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioflow.data' has no attribute {name!r}")
