"""Load a trained recognizer to transcribe, from a package ``audioflow export`` wrote (the
AsrSolver's ``exports()`` names this module's loader).

A package holds the recognizer's weights (``model.th``), the resolved config and, in
``metadata.json``, the vocabulary (``tokenizer``) and sample rate, so it needs nothing of
its XP. References: a folder path or ``//reference/NAME`` (the team's reference dir); an
XP's best state (``//sig/SIG``) is resolved by ``audioflow asr transcribe``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from audioflow.data.tokenizer import tokenizer_from_state
from audioflow.models.asr import CtcRecognizer
from audioflow.models.asr_decoding import BeamSearch, greedy_decode
from audioflow.models.package import PackageError

SOLVER = "asr"


@dataclass
class LoadedRecognizer:
    """A recognizer ready to transcribe (eval mode).

    Attributes:
        model: the CTC recognizer.
        tokenizer: its vocabulary.
        sample_rate: the audio rate it expects.
        metadata: the package's metadata (signature, metrics, lineage...).
        source: the reference it was loaded from.
    """

    model: CtcRecognizer
    tokenizer: object
    sample_rate: int
    metadata: dict
    source: str

    @torch.no_grad()
    def transcribe(self, wavs: list[torch.Tensor], beam_size: int = 1) -> list[str]:
        """Transcripts of mono (T,) utterances at ``sample_rate``.

        Args:
            wavs: the utterances.
            beam_size: 1 decodes greedily, more runs the CTC beam search.
        """
        device = next(self.model.parameters()).device
        lengths = torch.tensor([w.shape[-1] for w in wavs])
        batch = torch.zeros(len(wavs), int(lengths.max()))
        for i, w in enumerate(wavs):
            batch[i, : w.shape[-1]] = w
        out = self.model(batch.to(device), lengths.to(device))
        if beam_size > 1:
            ids = BeamSearch(self.tokenizer.tokens, beam_size)(out.log_probs, out.frames)
        else:
            ids = greedy_decode(out.log_probs, out.frames)
        return [self.tokenizer.decode(seq) for seq in ids]


def build_recognizer(cfg, state: dict, tokenizer_state: dict, where: str):
    """The recognizer of ``cfg.asr_model`` with ``state`` loaded, and its tokenizer.

    Raises:
        PackageError: the state or vocabulary does not fit the config (``where`` named).
    """
    from audioflow.models.asr_builder import build_asr_model

    try:
        tokenizer = tokenizer_from_state(tokenizer_state)
        model = build_asr_model(cfg, len(tokenizer))
        model.load_state_dict(state)
    except Exception as exc:  # a foreign or edited package fails in many ways
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PackageError(f"{where}: cannot rebuild the recognizer ({first})") from exc
    return model.eval(), tokenizer


def load_asr_package(ref: str | os.PathLike, device: str = "cpu") -> LoadedRecognizer:
    """Load a recognizer from a package folder or ``//reference/NAME``.

    Raises:
        PackageError: not an ASR package, or a missing or unreadable file (named).
        ConfigError: a ``//reference`` without a reference dir.
    """
    from audioflow.config.paths import resolve_path
    from audioflow.models.package import read_config, read_metadata

    ref = str(ref)
    root = resolve_path(ref)
    metadata, cfg = read_metadata(root), read_config(root)
    if metadata.get("solver") != SOLVER or not isinstance(metadata.get("tokenizer"), dict):
        raise PackageError(
            f"{ref}: a package of solver={metadata.get('solver')}, not a speech recognizer"
        )
    try:
        weights = torch.load(root / "model.th", map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files fail in many ways
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PackageError(f"{root / 'model.th'}: cannot load the weights ({first})") from exc
    model, tokenizer = build_recognizer(cfg, weights, metadata["tokenizer"], str(root))
    rate = int(metadata.get("sample_rate") or cfg.sample_rate)
    return LoadedRecognizer(model.to(device), tokenizer, rate, metadata, ref)
