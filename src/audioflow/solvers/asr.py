"""AsrSolver: speech recognition with CTC (``solver: asr``).

Train: whole utterances in length-bucketed batches; the recognizer (log-mel, SpecAugment,
Conformer, CTC head) returns the named loss ``loss`` (mean CTC loss per token), which the
``optim_sches.main`` OptimScheduler (Noam) back-propagates; with ``asr_model.aux_head`` an
auxiliary CTC head adds ``aux_loss``, trained by its own OptimScheduler on that head only.
The vocabulary (characters, or sentencepiece BPE) is built from the train transcripts once
and saved with the model. Valid: loss and greedy WER/CER (the best state has the lowest
``wer``). Evaluate: WER/CER of greedy decoding and of a CTC beam search on the evaluate
set (held-out voices in the demo), per utterance ``kind`` when the manifest has one.
Generate: a transcript page with audio, reference, hypothesis and aligned errors.
See docs/tasks/asr.md.
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from audioflow.data.tokenizer import normalize
from audioflow.metrics.asr import ErrorCounts
from audioflow.models.asr import ctc_loss
from audioflow.models.asr_decoding import BeamSearch, greedy_decode
from audioflow.solvers.base import StandardSolver


def _reduce_counts(counts: ErrorCounts) -> ErrorCounts:
    """Sum error counts over the ranks (every rank scored its own shard)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return counts
    total = torch.tensor(counts.as_list(), dtype=torch.float64)
    torch.distributed.all_reduce(total)
    return ErrorCounts.from_list(total.tolist())


class AsrSolver(StandardSolver):
    """CTC speech recognition solver; config keys in config/solver/asr/*.yaml."""

    progress_metrics = ("loss", "wer")

    def best_metric(self) -> str:
        return "wer"

    # -- building --------------------------------------------------------------------------
    def build_model(self) -> None:
        from audioflow.config.errors import ConfigError
        from audioflow.models.asr_builder import build_asr_model

        cfg = self.cfg
        if OmegaConf.select(cfg, "optim_sches") is None:
            raise ConfigError(
                "solver=asr trains through OptimSchedulers: set optim_sches (see "
                "config/solver/asr/default.yaml)"
            )
        try:
            self.tokenizer = self._saved_tokenizer() or self._new_tokenizer()
            self.model = build_asr_model(cfg, len(self.tokenizer)).to(self.device)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"asr model/tokenizer: {exc}") from None
        # the vocabulary is saved and restored with the weights: a resumed run or an
        # exported package decodes with the ids it was trained on
        self.register_stateful("tokenizer", "model")
        self.register_best("tokenizer", "model")
        self.register_ema("model")
        self.beam_size = int(OmegaConf.select(cfg, "decoding.beam_size", default=8))
        self._valid_counts = ErrorCounts()

    def _saved_tokenizer(self):
        """The vocabulary of this XP's latest (else best) checkpoint, or None before one.

        A resumed run, and an export after the data is gone, need the ids it trained on.
        """
        from audioflow.config.layout import BEST_CHECKPOINT, LATEST_CHECKPOINT
        from audioflow.data.tokenizer import tokenizer_from_state
        from audioflow.solvers import checkpoint

        folder = getattr(self, "folder", None)
        for name in (LATEST_CHECKPOINT, BEST_CHECKPOINT):
            path = folder / name if folder is not None else None
            if path is None or not path.is_file():
                continue
            try:
                state = checkpoint.load(path, sig=self.xp.sig).get("state", {})
            except checkpoint.CheckpointError:
                continue  # the loop reports a bad checkpoint; the other one may do
            if "tokenizer" in state:
                return tokenizer_from_state(state["tokenizer"])
        return None

    def _new_tokenizer(self):
        """A vocabulary built from the train transcripts (``tokenizer.kind``)."""
        from audioflow.config.errors import ConfigError
        from audioflow.data.builders import load_stage_manifest
        from audioflow.data.tokenizer import build_tokenizer

        train = OmegaConf.select(self.cfg, "datasource.train")
        if train is None:
            raise ConfigError("datasource.train: missing; the vocabulary is built from it")
        texts = [str(e["text"]) for e in load_stage_manifest("train", train) if e.get("text")]
        kind = str(OmegaConf.select(self.cfg, "tokenizer.kind", default="char"))
        size = int(OmegaConf.select(self.cfg, "tokenizer.vocab_size", default=256))
        try:
            return build_tokenizer(kind, texts, size)
        except ValueError as exc:
            raise ValueError(f"datasource.train ({train}): {exc}") from None

    def build_dataloaders(self) -> None:
        from audioflow.data.speech_loaders import build_speech_loaders

        self.dataloaders = build_speech_loaders(self.cfg, self.world_size, self.rank)

    @property
    def recognizer(self):
        """The recognizer inside a possible DDP wrapper."""
        return self._get("model")

    # -- train / valid -----------------------------------------------------------------------
    def _forward(self, batch: dict):
        wav = batch["wav"].to(self.device)  # (B, T)
        lengths = batch["lengths"].to(self.device)  # (B,)
        return self.model(wav, lengths)

    def run_step(self, idx: int, batch: dict, metrics: dict) -> dict:
        """CTC loss (and the auxiliary head's) of a batch; valid adds greedy WER/CER."""
        out = self._forward(batch)
        targets = [self.tokenizer.encode(t) for t in batch["texts"]]
        loss = ctc_loss(out.log_probs, out.frames, targets)
        keep_graph = self.is_training
        metrics["loss"] = loss if keep_graph else loss.detach()
        if out.aux_log_probs is not None:
            aux = ctc_loss(out.aux_log_probs, out.frames, targets)
            metrics["aux_loss"] = aux if keep_graph else aux.detach()
        if not self.is_training:
            hyps = [self.tokenizer.decode(ids) for ids in greedy_decode(out.log_probs, out.frames)]
            self._valid_counts.add([normalize(t) for t in batch["texts"]], hyps)
        return metrics

    def valid(self) -> dict:
        """Loss averaged over batches; WER/CER over the whole valid set (all ranks)."""
        self._valid_counts = ErrorCounts()
        metrics = super().valid()
        counts = _reduce_counts(self._valid_counts)
        metrics.update(wer=counts.wer, cer=counts.cer)
        return metrics

    # -- evaluate / generate -----------------------------------------------------------------
    def _decoders(self) -> dict:
        decoders = {"": lambda lp, fr: greedy_decode(lp, fr)}
        if self.beam_size > 1:
            decoders["_beam"] = BeamSearch(self.tokenizer.tokens, self.beam_size)
        return decoders

    def transcribe_batch(self, batch: dict, decoders: dict) -> dict[str, list[str]]:
        """Hypotheses of a batch per decoder suffix (``""`` greedy, ``"_beam"``)."""
        out = self._forward(batch)
        return {
            name: [self.tokenizer.decode(ids) for ids in decode(out.log_probs, out.frames)]
            for name, decode in decoders.items()
        }

    def evaluate(self) -> dict:
        """WER and CER (greedy and beam) over the evaluate set, per ``kind`` as well."""
        decoders = self._decoders()
        counts: dict[str, ErrorCounts] = {}
        for batch in self.dataloaders["evaluate"]:
            refs = [normalize(t) for t in batch["texts"]]
            kinds = [str(e.get("kind", "")) for e in batch["entries"]]
            for suffix, hyps in self.transcribe_batch(batch, decoders).items():
                counts.setdefault(suffix, ErrorCounts()).add(refs, hyps)
                for kind in sorted(set(kinds) - {""}):
                    chosen = [i for i, k in enumerate(kinds) if k == kind]
                    counts.setdefault(f"{suffix}_{kind}", ErrorCounts()).add(
                        [refs[i] for i in chosen], [hyps[i] for i in chosen]
                    )
        metrics = {}
        # greedy first, then the beam: the summary shows the first few (wer, cer, per kind)
        for name in sorted(counts, key=lambda n: (n.startswith("_beam"), n)):
            total = _reduce_counts(counts[name])
            # "_beam_digits" -> wer_beam_digits; the greedy totals are plain wer/cer
            metrics[f"wer{name}"], metrics[f"cer{name}"] = total.wer, total.cer
            if name == "":
                metrics["utterances"] = float(total.utterances)
        return metrics

    def generate(self) -> dict:
        """Write the transcript page of the first utterances under ``samples/epoch_<E>/``."""
        from audioflow.solvers import asr_samples, distrib

        limit = int(OmegaConf.select(self.cfg, "generate.max_files", default=8) or 8)
        folder = self.samples_folder
        folder.mkdir(parents=True, exist_ok=True)
        decoders = self._decoders()
        rows = []
        for batch in self.dataloaders.get("generate", self.dataloaders["evaluate"]):
            hyps = self.transcribe_batch(batch, decoders)
            for i in range(len(batch["texts"])):
                if len(rows) >= limit:
                    break
                name = f"r{self.rank}_{len(rows):03d}"
                n = int(batch["lengths"][i])
                audio = asr_samples.write_clip(
                    folder, name, batch["wav"][i, :n], int(self.cfg.sample_rate)
                )
                beam = hyps["_beam"][i] if "_beam" in hyps else None
                reference = batch["texts"][i]
                rows.append(asr_samples.transcript_row(name, audio, reference, hyps[""][i], beam))
            if len(rows) >= limit:
                break
        if distrib.is_distributed():
            parts: list = [None] * self.world_size
            torch.distributed.all_gather_object(parts, rows)
            rows = [row for part in parts for row in part]
        if self.is_rank_zero:
            title = f"XP {self.xp.sig}, epoch {self.epoch}: transcripts"
            asr_samples.write_page(folder, title, rows)
        return {"samples": float(len(rows))}

    # -- export ------------------------------------------------------------------------------
    def exports(self):
        """The recognizer, the vocabulary and sample rate a reader needs, and its loader."""
        from audioflow.solvers.exports import Export

        return Export(
            modules={"model": self.recognizer},
            metadata={
                "tokenizer": self.tokenizer.state_dict(),
                "sample_rate": int(self.cfg.sample_rate),
                "vocab_size": len(self.tokenizer),
            },
            loader="audioflow.models.asr_package:load_asr_package",
        )
