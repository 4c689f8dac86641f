"""Build the CTC recognizer from a composed config (the config reader of models/asr.py).

Keys: ``asr_model.*`` (config/model/conformer_ctc/*.yaml), ``specaugment.*`` (null turns
it off) and the global ``sample_rate``.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from audioflow.models.asr import CtcRecognizer


def build_asr_model(cfg: Any, vocab_size: int) -> CtcRecognizer:
    """The recognizer ``cfg.asr_model`` describes, with ``vocab_size`` CTC classes.

    Raises:
        ValueError, TypeError: a key the model does not take, or a bad value.
    """
    kwargs = OmegaConf.to_container(cfg.asr_model, resolve=True)
    kwargs["strides"] = tuple(kwargs.get("strides", (2, 2)))
    spec = OmegaConf.select(cfg, "specaugment")
    specaugment = OmegaConf.to_container(spec, resolve=True) if spec is not None else None
    return CtcRecognizer(
        vocab_size, sample_rate=int(cfg.sample_rate), specaugment=specaugment, **kwargs
    )
