"""LMSolver: a MusicGen-style token language model over a frozen reference codec (``solver: lm``).

The codec named by ``compression_model_checkpoint`` (``//reference/NAME``, ``//sig/SIG`` or
a package path) is loaded frozen, in eval mode, and its contract fixes the LM's codebooks,
cardinality, sample rate and frame rate: asking for more (``codebooks.n_q``) or for
another rate is refused before anything is written. Each manifest is encoded once into
token shards keyed by the codec's content hash and the manifest's hash
(:mod:`audioflow.data.tokens`); train and valid minimise the per-codebook cross-entropy,
with classifier-free-guidance dropout of the condition (``conditioner.dropout``).
Evaluate reports held-out cross-entropy and perplexity per codebook beside the uniform
(``ln card``) and unigram-on-train baselines; generate samples every condition, prompted
and not, decodes them and scores them with a classifier trained on real clips.
See docs/tasks/lm.md.
"""

from __future__ import annotations

import math

import torch
from omegaconf import OmegaConf

from audioflow.solvers.base import StandardSolver


def _config_error(message: str):
    from audioflow.config.errors import ConfigError

    return ConfigError(message)


def load_frozen_codec(ref: str, device) -> object:
    """Load the codec reference through ``audioflow.models.load_codec``, frozen.

    Raises:
        ConfigError: the reference cannot be loaded (the message names it).
    """
    from audioflow import models

    try:
        codec = models.load_codec(str(ref), device=str(device))
    except (ValueError, OSError) as exc:
        raise _config_error(f"compression_model_checkpoint={ref}: {exc}") from None
    return codec


class CodecRecord:
    """The codec an LM was trained on, kept in its checkpoints (see ``LMSolver.restore``)."""

    def __init__(self, codec):
        self.state = {
            "content_hash": str(codec.content_hash),
            "source": str(codec.source),
            "signature": str((codec.lineage or {}).get("signature")),
        }

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        pass  # the codec loaded now is the one in use; restore() checked they agree


class LMSolver(StandardSolver):
    """Token LM solver; config keys in config/solver/lm/*.yaml."""

    progress_metrics = ("ce", "ppl")
    # the null condition is used only in the items CFG dropout picks, so a batch may leave
    # it (or a label row) out of the loss
    ddp_find_unused_parameters = True

    def best_metric(self) -> str:
        return "ce"

    # -- building --------------------------------------------------------------------------
    def build_model(self) -> None:
        from audioflow.models.lm import TokenLM
        from audioflow.models.patterns import build_pattern
        from audioflow.optim import build_optimizer

        cfg = self.cfg
        self.codec = load_frozen_codec(cfg.compression_model_checkpoint, self.device)
        contract = self.codec.contract
        book = cfg.codebooks
        n_q = int(book.n_q) if book.n_q is not None else contract.n_q
        # one key at a time, so that the error names the LM's key that asks too much
        asked = {
            "codebooks.n_q": ("n_q", n_q),
            "codebooks.card": ("card", book.card),
            "sample_rate": ("sample_rate", cfg.sample_rate),
            "channels": ("channels", cfg.channels),
        }
        for key, (name, value) in asked.items():
            if value is None:
                continue
            try:
                self.codec.require(**{name: int(value)})
            except ValueError as exc:
                raise _config_error(f"{key}={value}: {exc}") from None
        try:
            pattern = build_pattern(str(book.pattern), n_q)
        except ValueError as exc:
            raise _config_error(f"codebooks.pattern: {exc}") from None
        self.n_q, self.card = n_q, contract.cardinality
        self.frame_rate, self.sample_rate = float(contract.frame_rate), contract.sample_rate
        self.segment_frames = max(1, round(float(cfg.dataset.segment_duration) * self.frame_rate))
        arch = OmegaConf.to_container(cfg.transformer_lm, resolve=True)
        # the condition prefix, then the longest sequence the XP trains or samples
        steps = 1 + pattern.sequence_length(self._max_frames())
        if arch.get("max_steps") is None:  # sized from the codec's frame rate
            arch["max_steps"] = steps
        if int(arch["max_steps"]) < steps:
            raise _config_error(
                f"transformer_lm.max_steps={arch['max_steps']}: the longest sequence needs "
                f"{steps} steps at {self.frame_rate:g} frames/s; raise it or shorten "
                "dataset.segment_duration / generate.duration"
            )
        self._entries = {}
        conditioner = self._build_conditioner(int(arch["dim"]))
        self.model = TokenLM(pattern, self.card, conditioner=conditioner, **arch).to(self.device)
        self.codec_record = CodecRecord(self.codec)
        self.register_stateful("model", "codec_record")
        if self.trains:  # a valid/evaluate/generate job needs none (see not_training)
            self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
            self.register_stateful("optimizer")
        self.register_best("model")
        self.register_ema("model")
        self.logger.info(
            "codec %s (hash %s): %d of %d codebooks x %d codes, %g frames/s, %d Hz",
            self.codec.source,
            self.codec.content_hash[:12],
            n_q,
            contract.n_q,
            self.card,
            self.frame_rate,
            self.sample_rate,
        )

    def _max_frames(self) -> int:
        duration = max(float(self.cfg.dataset.segment_duration), float(self.cfg.generate.duration))
        return math.ceil(duration * self.frame_rate)

    def _manifest(self, stage: str):
        from audioflow.config.paths import resolve_path
        from audioflow.data.manifest import read_manifest

        source = OmegaConf.select(self.cfg, f"datasource.{stage}")
        if source is None:
            return None, []
        path = resolve_path(str(source))
        if not path.is_file():
            raise _config_error(
                f"datasource.{stage}: manifest {path} not found; build it with "
                "`audioflow manifest AUDIO_FOLDER -o FILE` (or `audioflow synth` for the demo)"
            )
        if stage not in self._entries:
            self._entries[stage] = read_manifest(path)
        return path, self._entries[stage]

    def _build_conditioner(self, dim: int):
        from audioflow.models.conditioners import build_conditioner

        node = self.cfg.get("conditioner")
        if node is None:
            return None
        field = str(node.field)
        labels = None
        if str(node.type) == "label":
            _, entries = self._manifest("train")
            labels = sorted({str(e[field]) for e in entries if e.get(field) is not None})
            if not labels:
                raise _config_error(
                    f"conditioner.field={field}: no entry of datasource.train has it; pick a "
                    "field of the manifest's sidecars (e.g. class)"
                )
        try:
            return build_conditioner(
                str(node.type), field=field, dim=dim, dropout=float(node.dropout), labels=labels
            )
        except ValueError as exc:
            raise _config_error(str(exc)) from None

    def build_dataloaders(self) -> None:
        from torch.utils.data import DataLoader

        from audioflow.data.builders import stage_options
        from audioflow.data.samplers import TrainSampler
        from audioflow.data.token_dataset import TokenDataset, collate_tokens

        cfg = self.cfg
        self.tokens = {}
        for stage in ("train", "valid", "evaluate"):
            path, entries = self._manifest(stage)
            if path is None:
                continue
            self.tokens[stage] = self._tokens(path)
            opts = stage_options(cfg, stage)
            per_rank = int(opts["batch_size"]) // self.world_size
            num_batches = self.settings.updates_per_epoch
            num_samples = opts["num_samples"]
            if stage == "train" and num_samples is None:
                num_samples = num_batches * int(opts["batch_size"])
            dataset = TokenDataset(
                self.tokens[stage].codes,
                entries,
                frames=self.segment_frames,
                num_samples=num_samples if stage == "train" else None,
                shuffle=stage == "train",
                seed=int(cfg.seed),
            )
            sampler = None
            if stage == "train":
                sampler = TrainSampler(
                    len(dataset), per_rank, num_batches, self.world_size, self.rank
                )
            elif self.world_size > 1:
                sampler = torch.utils.data.DistributedSampler(
                    dataset, self.world_size, self.rank, shuffle=False
                )
            self.dataloaders[stage] = DataLoader(
                dataset,
                batch_size=per_rank,
                sampler=sampler,
                num_workers=int(opts["num_workers"]),
                collate_fn=collate_tokens,
            )

    def _tokens(self, manifest):
        """The manifest's token shards; rank 0 encodes them when needed, the others wait."""
        from audioflow.data import tokens
        from audioflow.solvers import distrib

        if self.is_rank_zero:
            shards = tokens.ensure_tokens(self.codec, manifest)
            what = "encoded" if shards.built else "reused"
            self.logger.info("tokens of %s %s: %s", manifest, what, shards.folder)
        distrib.barrier()
        if not self.is_rank_zero:
            shards = tokens.ensure_tokens(self.codec, manifest)
        return shards

    # -- resume ----------------------------------------------------------------------------------
    def restore(self) -> bool:
        """Resume, unless the checkpoints were trained on the tokens of another codec.

        The signature names the codec reference (``//reference/demo_codec``), not what it
        holds: when a new codec is published under that name, the XP's checkpoints (and its
        best state, stages and samples) are moved to ``stale_codec/<old hash>/`` and the
        LM trains again from scratch on the new tokens.
        """
        trained_on = self._trained_codec_hash()
        if trained_on is not None and trained_on != self.codec.content_hash:
            self._set_aside(trained_on)
        return super().restore()

    def _trained_codec_hash(self) -> str | None:
        from audioflow.config.layout import LATEST_CHECKPOINT
        from audioflow.solvers import checkpoint

        paths = [self.folder / LATEST_CHECKPOINT]
        paths += [p for _, p in reversed(checkpoint.epoch_checkpoints(self.folder))]
        for path in paths:
            if not path.is_file():
                continue
            try:
                payload = checkpoint.load(path, sig=self.xp.sig, kind="checkpoint")
            except checkpoint.CheckpointError:
                continue  # the base's restore says why and falls back
            return (payload["state"].get("codec_record") or {}).get("content_hash")
        return None

    def _set_aside(self, old_hash: str) -> None:
        import shutil

        from audioflow.config import layout
        from audioflow.solvers import checkpoint, distrib

        if self.is_rank_zero:
            dest = self.folder / "stale_codec" / old_hash[:16]
            dest.mkdir(parents=True, exist_ok=True)
            names = [
                layout.LATEST_CHECKPOINT,
                layout.BEST_CHECKPOINT,
                layout.BEST_FILE,
                layout.HISTORY_FILE,
                layout.STAGES_DIR,
                layout.SAMPLES_DIR,
            ]
            names += [p.name for _, p in checkpoint.epoch_checkpoints(self.folder)]
            for name in names:
                if (self.folder / name).exists():
                    shutil.move(str(self.folder / name), str(dest / name))
            self.logger.warning(
                "XP %s was trained on codec %s; %s now holds %s: its state moved to %s, "
                "training again",
                self.xp.sig,
                old_hash[:12],
                self.codec.source,
                self.codec.content_hash[:12],
                dest,
            )
        distrib.barrier()

    # -- train / valid -----------------------------------------------------------------------
    @property
    def lm(self):
        """The LM inside a possible DDP wrapper."""
        return self._get("model")

    def _nll(self, codes, frames, infos, null=None):
        """Summed NLL and token count per codebook, through the (DDP) model's forward."""
        lm = self.lm
        codes = codes[:, : self.n_q].to(self.device)
        frames = frames.to(self.device)
        inputs, targets, valid = lm.prepare(codes, frames)
        logits = self.model(inputs, infos, null)
        return lm.token_nll(logits, targets, valid)

    def run_step(self, idx: int, batch, metrics: dict) -> dict:
        """Cross-entropy of a batch (nats per token, all codebooks); steps on train."""
        codes, frames, infos = batch
        nll, count = self._nll(codes, frames, infos)
        ce = nll.sum() / count.sum().clamp(min=1)
        if self.is_training:
            # the optimizer protocol clips to optim.max_norm and applies the NaN policy
            self.optimizer.zero_grad(set_to_none=True)
            self.backward(ce)
            self.optimizer.step()
        ce = ce.detach()
        metrics["ce"] = ce
        metrics["ppl"] = torch.exp(ce)
        per_book = (nll.detach() / count.clamp(min=1)).tolist()
        metrics.update({f"ce_q{k}": v for k, v in enumerate(per_book)})
        return metrics

    # -- evaluate ------------------------------------------------------------------------------
    def unigram_log_probs(self) -> torch.Tensor:
        """Per-codebook log-frequency of each code in the train tokens (add-one), (K, card)."""
        counts = torch.ones(self.n_q, self.card, dtype=torch.float64)
        for codes in self.tokens["train"].codes:
            for k in range(self.n_q):
                counts[k] += torch.bincount(codes[k], minlength=self.card).double()
        return (counts / counts.sum(-1, keepdim=True)).log()

    def evaluate(self) -> dict:
        """Held-out cross-entropy and perplexity per codebook, beside two baselines.

        The baselines score the very tokens the LM is scored on: ``uniform_ce`` is
        ``ln card``; ``unigram_ce`` is a per-codebook unigram fitted on the train tokens.
        """
        unigram = self.unigram_log_probs()
        nll = torch.zeros(self.n_q, dtype=torch.float64)
        uni = torch.zeros(self.n_q, dtype=torch.float64)
        count = torch.zeros(self.n_q, dtype=torch.float64)
        for codes, frames, infos in self.dataloaders["evaluate"]:
            batch_nll, batch_count = self._nll(codes, frames, infos)
            nll += batch_nll.double().cpu()
            count += batch_count.double().cpu()
            for b in range(codes.shape[0]):
                real = codes[b, : self.n_q, : int(frames[b])]  # (K, f)
                uni -= unigram.gather(1, real).sum(-1)
        count = count.clamp(min=1)
        ce, uni_ce = float(nll.sum() / count.sum()), float(uni.sum() / count.sum())
        metrics = {
            "ce": ce,
            "ppl": math.exp(ce),
            "unigram_ce": uni_ce,
            "uniform_ce": math.log(self.card),
            "ce_ratio_unigram": ce / uni_ce,
            "tokens": float(count.sum()),
        }
        for k in range(self.n_q):
            book_ce = float(nll[k] / count[k])
            metrics[f"ce_q{k}"] = book_ce
            metrics[f"ppl_q{k}"] = math.exp(book_ce)
            metrics[f"unigram_ce_q{k}"] = float(uni[k] / count[k])
        return metrics

    # -- generate ------------------------------------------------------------------------------
    def generate(self) -> dict:
        """Samples per condition (prompted and not), a listening page, conditioning accuracy."""
        from audioflow.solvers import lm_samples

        return lm_samples.generate_samples(self)

    # -- export ----------------------------------------------------------------------------------
    def exports(self):
        """The LM's weights, and the lineage of the codec whose tokens it models."""
        from audioflow.solvers.exports import Export

        codec = {
            "source": str(self.codec.source),
            "signature": (self.codec.lineage or {}).get("signature"),
            "content_hash": self.codec.content_hash,
            "n_q": self.n_q,
            "cardinality": self.card,
            "frame_rate": self.frame_rate,
            "sample_rate": self.sample_rate,
        }
        return Export(modules={"model": self.lm}, metadata={"codec": codec})
