"""Load a trained recognizer to transcribe: from a package ``audioflow export`` wrote (the
AsrSolver's ``exports()`` names this module's loader), or from an XP's best state.

A package holds the recognizer's weights (``model.th``), the resolved config and, in
``metadata.json``, the vocabulary (``tokenizer``) and sample rate, so it needs nothing of
its XP. References: a folder path, ``//reference/NAME`` (the team's reference dir) or
``//sig/SIG`` (an XP's best state, read without exporting it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from audioflow.data.tokenizer import tokenizer_from_state
from audioflow.models.asr import CtcRecognizer
from audioflow.models.asr_decoding import BeamSearch, greedy_decode
from audioflow.models.package import PackageError

SOLVER = "asr"
SIG_PREFIX = "//sig/"


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


def _build(cfg, state: dict, tokenizer_state: dict, where: str) -> tuple[CtcRecognizer, object]:
    from audioflow.models.asr_builder import build_asr_model

    try:
        tokenizer = tokenizer_from_state(tokenizer_state)
        model = build_asr_model(cfg, len(tokenizer))
        model.load_state_dict(state)
    except Exception as exc:  # a foreign or edited package fails in many ways
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PackageError(f"{where}: cannot rebuild the recognizer ({first})") from exc
    return model.eval(), tokenizer


def _from_xp(sig: str, device: str) -> LoadedRecognizer:
    """The recognizer of an ASR XP's best state."""
    from audioflow.config import xp_from_sig
    from audioflow.config.errors import ConfigError
    from audioflow.config.layout import BEST_CHECKPOINT
    from audioflow.solvers import checkpoint

    xp = xp_from_sig(sig)
    if str(xp.cfg.get("solver")) != SOLVER:
        raise ConfigError(f"XP {sig} trains solver={xp.cfg.get('solver')}, not asr")
    best_path = Path(xp.folder) / BEST_CHECKPOINT
    if not best_path.exists():
        raise checkpoint.CheckpointError(
            f"{best_path}: no best state yet; run the XP through a valid stage first"
        )
    best = checkpoint.load(best_path, sig=xp.sig, kind="best")
    state = best["state"]
    model, tokenizer = _build(xp.cfg, state["model"], state["tokenizer"], f"{SIG_PREFIX}{sig}")
    metadata = {"signature": xp.sig, "best": {"epoch": best.get("epoch"), "value": best["value"]}}
    return LoadedRecognizer(
        model.to(device), tokenizer, int(xp.cfg.sample_rate), metadata, SIG_PREFIX + sig
    )


def load_asr_package(ref: str | os.PathLike, device: str = "cpu") -> LoadedRecognizer:
    """Load a recognizer from a package folder, ``//reference/NAME`` or ``//sig/SIG``.

    Raises:
        PackageError: not an ASR package, or a missing or unreadable file (named).
        ConfigError: a ``//reference`` without a reference dir, or an unknown XP.
        CheckpointError: ``//sig/SIG`` of an XP without a best state.
    """
    from audioflow.config.paths import resolve_path
    from audioflow.models.package import read_config, read_metadata

    ref = str(ref)
    if ref.startswith(SIG_PREFIX):
        return _from_xp(ref[len(SIG_PREFIX) :], device)
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
    model, tokenizer = _build(cfg, weights, metadata["tokenizer"], str(root))
    rate = int(metadata.get("sample_rate") or cfg.sample_rate)
    return LoadedRecognizer(model.to(device), tokenizer, rate, metadata, ref)
