"""Packages of a trained recognizer: export an ASR XP's best state, load it to transcribe.

A package is the folder ``models.package.write_package`` writes (``model.th`` weights,
``config.yaml`` resolved config, ``metadata.json``), with ``"solver": "asr"`` and the
vocabulary (``tokenizer``) in the metadata, so it needs nothing of its XP. References:
a folder path, ``//reference/NAME`` (the team's reference dir) or ``//sig/SIG`` (an XP's
best state, read without exporting it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from audioflow.data.tokenizer import tokenizer_from_state
from audioflow.models.asr import CtcRecognizer
from audioflow.models.asr_decoding import BeamSearch, greedy_decode
from audioflow.models.package import FILES, PackageError

SOLVER = "asr"
SIG_PREFIX = "//sig/"


@dataclass
class LoadedRecognizer:
    """A recognizer ready to transcribe (eval mode).

    Attributes:
        model: the CTC recognizer.
        tokenizer: its vocabulary.
        sample_rate: the audio rate it expects.
        metadata: the package's metadata (signature, metrics, code version...).
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


def _best_of_xp(sig: str) -> tuple[object, dict, dict, dict]:
    """(XP, weights, tokenizer state, metadata) of an ASR XP's best state."""
    from audioflow.config import xp_from_sig
    from audioflow.config.errors import ConfigError
    from audioflow.solvers import checkpoint

    xp = xp_from_sig(sig)
    if str(xp.cfg.get("solver")) != SOLVER:
        raise ConfigError(f"XP {sig} trains solver={xp.cfg.get('solver')}, not asr")
    best_path = Path(xp.folder) / checkpoint.BEST
    if not best_path.exists():
        raise checkpoint.CheckpointError(
            f"{best_path}: no best state yet; run the XP through a valid stage first"
        )
    best = checkpoint.load(best_path, sig=xp.sig, kind="best")
    state = best["state"]
    metadata = {
        "signature": xp.sig,
        "overrides": list(xp.overrides),
        "best": {"epoch": best.get("epoch"), "metric": best.get("metric"), "value": best["value"]},
    }
    return xp, state["model"], state["tokenizer"], metadata


def export_asr(sig: str, output: str | Path, force: bool = False) -> Path:
    """Write the package of ASR XP ``sig`` to ``output`` (what ``AsrSolver.exports`` names).

    Raises:
        ConfigError: unknown XP or not an ASR XP.
        CheckpointError: the XP has no best state yet.
        PackageError: the destination exists (without ``force``), or the weights do not
            fit the config.
        OutputError: the destination cannot receive a package.
    """
    from omegaconf import OmegaConf

    from audioflow.models.package import check_destination, write_package
    from audioflow.solvers.commands.export import _evaluate_metrics, code_version, manifest_hashes

    check_destination(output, overwrite=force)  # refused before anything is read
    xp, weights, tokenizer_state, metadata = _best_of_xp(sig)
    cfg = xp.cfg
    model, tokenizer = _build(cfg, weights, tokenizer_state, f"XP {sig}")
    metadata.update(
        solver=SOLVER,
        sample_rate=int(cfg.sample_rate),
        tokenizer=tokenizer.state_dict(),
        vocab_size=len(tokenizer),
        metrics=_evaluate_metrics(Path(xp.folder)),
        manifests=manifest_hashes(OmegaConf.select(cfg, "datasource")),
        code_version=code_version(),
        exported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return write_package(output, model.state_dict(), cfg, metadata, overwrite=force)


def load_asr_package(ref: str, device: str = "cpu") -> LoadedRecognizer:
    """Load a recognizer from a package folder, ``//reference/NAME`` or ``//sig/SIG``.

    Raises:
        PackageError: not an ASR package, a missing or unreadable file (named).
        ConfigError: a ``//reference`` without a reference dir, or an unknown XP.
    """
    import json

    from omegaconf import OmegaConf

    from audioflow.config.paths import resolve_path

    if ref.startswith(SIG_PREFIX):
        xp, weights, tokenizer_state, metadata = _best_of_xp(ref[len(SIG_PREFIX) :])
        model, tokenizer = _build(xp.cfg, weights, tokenizer_state, ref)
        rate = int(xp.cfg.sample_rate)
        return LoadedRecognizer(model.to(device), tokenizer, rate, metadata, ref)
    root = resolve_path(ref)
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise PackageError(
            f"{ref}: not a package (missing {', '.join(missing)} in {root}); create one with "
            "`audioflow asr export SIG -o DIR`"
        )
    try:
        metadata = json.loads((root / "metadata.json").read_bytes())
        cfg = OmegaConf.load(root / "config.yaml")
        weights = torch.load(root / "model.th", map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files fail in many ways
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PackageError(f"{root}: unreadable package ({first}); export it again") from exc
    if not isinstance(metadata, dict) or metadata.get("solver") != SOLVER:
        solver = metadata.get("solver") if isinstance(metadata, dict) else None
        raise PackageError(f"{ref}: a package of solver={solver}, not a speech recognizer")
    model, tokenizer = _build(cfg, weights, metadata.get("tokenizer") or {}, str(root))
    return LoadedRecognizer(
        model.to(device), tokenizer, int(metadata["sample_rate"]), metadata, ref
    )
