"""Model code with plain arguments (no config objects; builders.py reads the config).

- ``seanet``: SEANet convolutional encoder/decoder (causal or not, optional LSTM);
- ``quantizer``: residual vector quantizer with EMA codebooks;
- ``encodec``: the codec (encoder -> quantizer -> decoder);
- ``discriminator``: multi-scale STFT discriminator;
- ``package``: exported codec packages (write/load);
- ``codec_ref``: ``load_codec(ref)`` and the codec contract its consumers check;
- ``builders``: config -> models.

``load_codec`` is importable from here without importing torch until it is called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_codec"]


def load_codec(ref: str, device: str = "cpu") -> Any:
    """See :func:`audioflow.models.codec_ref.load_codec`."""
    from audioflow.models.codec_ref import load_codec as load

    return load(ref, device)
