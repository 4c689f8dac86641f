"""CompressionSolver: trains an EnCodec-style neural audio codec (``solver: compression``).

Train and valid run on fixed-length segments: the codec reconstructs them and the
weighted reconstruction objective (waveform L1/L2, multi-scale mel, multi-resolution STFT,
commitment) is minimised. With ``losses.adv`` or ``losses.feat`` > 0 a multi-scale STFT
discriminator joins: the generator adds hinge and feature-matching terms to ``gen_loss``
and the discriminator learns on ``disc_loss``, each through its own OptimScheduler
(``optim_sches.gen`` and ``optim_sches.disc``). Evaluate reports SI-SNR, mel distance and
bitrate per bandwidth with the best state; generate writes audio, spectrograms and an
HTML page to listen to. See docs/tasks/compression.md.
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from audioflow.losses.adversarial import (
    feature_matching_loss,
    frozen,
    hinge_disc_loss,
    hinge_gen_loss,
)
from audioflow.losses.codec import ReconstructionLoss
from audioflow.metrics.codec import MelDistance, audible, si_snr, si_snr_items
from audioflow.models.builders import build_compression_model, build_discriminator
from audioflow.models.package import codec_weights
from audioflow.solvers import compression_samples as samples
from audioflow.solvers import pages
from audioflow.solvers.base import StandardSolver

ADVERSARIAL = ("adv", "feat")


def codec_state_dict(state: dict) -> dict:
    """The codec's weights out of the solver model's state (the discriminator left out)."""
    return codec_weights(state)


def _source_label(name: str, info: dict) -> str:
    """``name`` plus the source file and offset when the loader returns item infos."""
    if not info.get("path"):
        return name
    from pathlib import Path

    return f"{name} ({Path(info['path']).name} @ {float(info.get('seek_time', 0.0)):.2f} s)"


def _mean_scores(rows: list[dict], columns: list[str]) -> dict:
    """Mean of each score over the rendered rows, per column."""
    out = {}
    for column in columns:
        values = [row["scores"][column] for row in rows if column in row.get("scores", {})]
        if values:
            out[column] = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
    return out


class _CodecOnly:
    """A codec seen through ``state_dict`` without its discriminator (what export writes)."""

    def __init__(self, codec):
        self.codec = codec

    def state_dict(self) -> dict:
        return codec_state_dict(self.codec.state_dict())


class CompressionSolver(StandardSolver):
    """Neural audio codec solver; config keys in config/solver/compression/*.yaml."""

    def best_metric(self) -> str:
        return "mel_distance"

    # -- building --------------------------------------------------------------------------
    def build_model(self) -> None:
        from audioflow.config.errors import ConfigError

        cfg = self.cfg
        weights = OmegaConf.to_container(cfg.losses, resolve=True)
        adv = {k: float(weights.pop(k, 0.0)) for k in ADVERSARIAL}
        self.adversarial = any(w > 0 for w in adv.values())
        self.adv_weights = adv
        try:
            self.model = build_compression_model(cfg).to(self.device)
            self.loss_fn = ReconstructionLoss(
                int(cfg.sample_rate),
                weights,
                mel_kwargs=OmegaConf.to_container(cfg.mel_loss, resolve=True),
                mrstft_kwargs=OmegaConf.to_container(cfg.mrstft_loss, resolve=True),
            ).to(self.device)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"compression model/losses: {exc}") from None
        mel = cfg.metrics.mel_distance
        self.mel_distance = MelDistance(int(cfg.sample_rate), int(mel.n_fft), int(mel.n_mels))
        self.mel_distance.to(self.device)
        if self.adversarial:
            if cfg.optim_sches is None:
                raise ConfigError(
                    "losses.adv/losses.feat > 0 train a discriminator: set optim_sches with a "
                    "gen (encoder, quantizer, decoder) and a disc (discriminator) entry, as "
                    "solver=compression/gan_debug does"
                )
            # The discriminator is a child of the model so that optim_sches.disc finds it by
            # name and DDP syncs it with the codec; export leaves it out (codec_state_dict).
            self.model.discriminator = build_discriminator(cfg).to(self.device)
        self.register_stateful("model")
        if cfg.optim_sches is None and self.trains:  # none outside training (not_training)
            from audioflow.optim import build_optimizer

            self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
            self.register_stateful("optimizer")
        self.register_best("model")
        self.register_ema("model")

    def build_dataloaders(self) -> None:
        from audioflow.data.builders import build_audio_loaders

        self.dataloaders = build_audio_loaders(self.cfg, self.world_size, self.rank)

    @property
    def codec(self):
        """The codec inside a possible DDP wrapper."""
        return self._get("model")

    # -- train / valid -----------------------------------------------------------------------
    @staticmethod
    def _audio(batch) -> torch.Tensor:
        return batch[0] if isinstance(batch, tuple | list) else batch

    def run_step(self, idx: int, batch, metrics: dict) -> dict:
        """Reconstruct a batch; on train return (or step on) ``gen_loss``/``disc_loss``."""
        x = self._audio(batch).to(self.device)  # (B, C, T)
        result = self.model(x)
        y = result.x
        recon, terms = self.loss_fn(y, x, result.penalty)
        gen_loss = recon
        if self.adversarial and self.is_training:
            gen_loss, disc_loss, adv_terms = self._adversarial(x, y, recon)
            terms.update(adv_terms)
            metrics["disc_loss"] = disc_loss
        if self.is_training and self.optim_sches is None:
            # the optimizer protocol clips to optim.max_norm and applies the NaN policy
            self.optimizer.zero_grad(set_to_none=True)
            self.backward(gen_loss)
            self.optimizer.step()
        # the OptimSchedulers need the graph of gen_loss; everywhere else it is only reported
        keep_graph = self.is_training and self.optim_sches is not None
        metrics["gen_loss"] = gen_loss if keep_graph else gen_loss.detach()
        metrics.update({k: v.detach() for k, v in terms.items()})
        metrics["bandwidth"] = result.bandwidth.detach()
        with torch.no_grad():
            if bool(audible(x).any()):  # a batch of silence has no SI-SNR (NaN): not averaged
                metrics["sisnr"] = si_snr(y, x)
            metrics["mel_distance"] = self.mel_distance(y, x)
        if self.is_training:
            metrics.update({k: float(v) for k, v in result.metrics.items()})
        return metrics

    def _adversarial(self, x: torch.Tensor, y: torch.Tensor, recon: torch.Tensor):
        disc = self.codec.discriminator
        # generator side: the discriminator judges the reconstruction but is not trained by it
        with frozen(disc):
            logits_fake, fmaps_fake = disc(y)
            _, fmaps_real = disc(x)
        adv_terms = {}
        gen_loss = recon
        if self.adv_weights["adv"] > 0:
            adv_terms["adv"] = hinge_gen_loss(logits_fake)
            gen_loss = gen_loss + self.adv_weights["adv"] * adv_terms["adv"]
        if self.adv_weights["feat"] > 0:
            adv_terms["feat"] = feature_matching_loss(fmaps_real, fmaps_fake)
            gen_loss = gen_loss + self.adv_weights["feat"] * adv_terms["feat"]
        # discriminator side: real vs detached fake, so disc_loss reaches no codec weight
        logits_real, _ = disc(x)
        logits_fake_d, _ = disc(y.detach())
        return gen_loss, hinge_disc_loss(logits_real, logits_fake_d), adv_terms

    # -- export ------------------------------------------------------------------------------
    def exports(self):
        """The codec (without the discriminator), its contract and the codec loader."""
        from audioflow.models.codec_ref import CodecContract
        from audioflow.solvers.exports import Export

        codec = self.codec
        contract = CodecContract.of_model(codec)
        return Export(
            modules={"model": _CodecOnly(codec)},
            metadata={
                "contract": contract.to_dict(),
                "sample_rate": contract.sample_rate,
                "channels": contract.channels,
                "frame_rate": contract.frame_rate,
                "n_q": contract.n_q,
                "cardinality": contract.cardinality,
                "bitrate_kbps": contract.bitrate_kbps,
                "bandwidths_kbps": list(contract.bandwidths),
            },
            loader="audioflow.models.codec_ref:load_codec",
        )

    # -- evaluate / generate -----------------------------------------------------------------
    def _codebook_counts(self, key: str) -> list[int]:
        total = self.codec.total_codebooks
        chosen = OmegaConf.select(self.cfg, key)
        counts = list(range(1, total + 1)) if chosen is None else [int(n) for n in chosen]
        bad = [n for n in counts if not 1 <= n <= total]
        if bad:
            from audioflow.config.errors import ConfigError

            raise ConfigError(f"{key}={counts}: codebook counts must lie in [1, {total}]")
        return sorted(set(counts) | {total})

    def evaluate(self) -> dict:
        """SI-SNR, mel distance and bitrate of the evaluate set, per number of codebooks."""
        codec = self.codec
        counts = self._codebook_counts("evaluate.bandwidths")
        sums = {n: {"sisnr": 0.0, "audible": 0, "mel_distance": 0.0, "items": 0} for n in counts}
        for batch in self.dataloaders["evaluate"]:
            x = self._audio(batch).to(self.device)
            mask = audible(x)
            for n, y in codec.reconstruct(x, counts).items():
                acc = sums[n]
                acc["sisnr"] += float(si_snr_items(y, x)[mask].sum())
                acc["audible"] += int(mask.sum())
                acc["mel_distance"] += float(self.mel_distance(y, x)) * x.shape[0]
                acc["items"] += x.shape[0]
        codec.set_num_codebooks(codec.total_codebooks)
        metrics = {}
        for n, acc in sums.items():
            suffix = "" if n == codec.total_codebooks else f"_q{n}"
            metrics[f"sisnr{suffix}"] = acc["sisnr"] / max(acc["audible"], 1)
            metrics[f"mel_distance{suffix}"] = acc["mel_distance"] / max(acc["items"], 1)
            metrics[f"bitrate_kbps{suffix}"] = codec.quantizer.bandwidth(n, codec.frame_rate)
        return metrics

    def generate(self) -> dict:
        """Write originals, reconstructions per bandwidth and Opus at the matching bitrate
        under ``samples/epoch_<E>/``, with an index page (see compression_samples)."""
        from audioflow.metrics import opus
        from audioflow.solvers import distrib

        codec, sr = self.codec, int(self.cfg.sample_rate)
        counts = self._codebook_counts("generate.bandwidths")
        limit = int(OmegaConf.select(self.cfg, "generate.max_files", default=4) or 4)
        min_active = float(OmegaConf.select(self.cfg, "generate.min_active", default=0.5))
        with_opus = bool(OmegaConf.select(self.cfg, "generate.opus", default=True))
        with_opus = with_opus and opus.available() and codec.channels == 1
        folder = self.samples_folder
        folder.mkdir(parents=True, exist_ok=True)
        rows, written, skipped = [], 0, 0
        for batch in self.dataloaders.get("generate", self.dataloaders["evaluate"]):
            x = self._audio(batch).to(self.device)
            infos = batch[1] if isinstance(batch, tuple | list) else [{}] * x.shape[0]
            for i in range(x.shape[0]):
                if written >= limit:
                    break
                # a clip that is mostly silence says nothing by ear and scores -60 dB
                if pages.active_fraction(x[i], sr) < min_active:
                    skipped += 1
                    continue
                name = f"r{self.rank}_{written:03d}"
                row = self._render(codec, x[i : i + 1], name, counts, sr, folder, with_opus)
                row["name"] = _source_label(name, infos[i])
                rows.append(row)
                written += 1
            if written >= limit:
                break
        codec.set_num_codebooks(codec.total_codebooks)
        if distrib.is_distributed():  # every rank rendered its shard; rank 0 lists them all
            parts: list = [None] * self.world_size
            torch.distributed.all_gather_object(parts, rows)
            rows = [row for part in parts for row in part]
        if self.is_rank_zero:
            columns = ["original"] + [self._label(codec, n) for n in counts]
            if with_opus:
                columns += sorted({c for row in rows for c in row["cells"] if c.startswith("Opus")})
            notes = [
                f"spectrograms: dB re full scale on one scale ({pages.DB_RANGE[0]:g} to "
                f"{pages.DB_RANGE[1]:g} dB) for every image; level: RMS relative to the "
                "original; clips with less than "
                f"{min_active:.0%} of 20 ms frames above -50 dBFS are left out ({skipped} here)",
            ]
            if not with_opus:
                notes.append("no Opus column: opusenc/opusdec not installed (opus-tools)")
            title = f"XP {self.xp.sig}, epoch {self.epoch}: original vs reconstruction"
            header = {
                "signature": self.xp.sig,
                "overrides": list(self.xp.overrides),
                "notes": notes,
                "clip_metrics": _mean_scores(rows, columns[1:]),
                "evaluate_metrics": self._latest_evaluate(),
            }
            samples.write_index(folder, title, rows, columns, header)
        return {"samples": float(written)}

    def _latest_evaluate(self) -> dict:
        """The latest evaluate metrics of the history, grouped by bandwidth."""
        for entry in reversed(self.history):
            metrics = entry.get("evaluate") if isinstance(entry, dict) else None
            if isinstance(metrics, dict):
                grouped: dict[str, dict] = {}
                for key, value in metrics.items():
                    base, _, suffix = key.partition("_q")
                    if not suffix.isdigit():
                        base, suffix = key, str(self.codec.total_codebooks)
                    grouped.setdefault(f"{suffix} codebooks", {})[base] = value
                return {f"epoch {entry.get('epoch')}, {k}": v for k, v in grouped.items()}
        return {}

    @staticmethod
    def _label(codec, n: int) -> str:
        return f"{codec.quantizer.bandwidth(n, codec.frame_rate):.2f} kbps ({n} codebooks)"

    def _render(self, codec, x, name: str, counts, sr: int, folder, with_opus: bool) -> dict:
        from audioflow.metrics import opus

        cells, notes, scores = {}, {}, {}
        pages.write_audio(folder / f"{name}_original.wav", x[0], sr)
        pages.write_spectrogram(folder / f"{name}_original.png", x[0], sr, "original")
        cells["original"] = (f"{name}_original.wav", f"{name}_original.png")
        versions = [
            (self._label(codec, n), f"{name}_q{n}", y)
            for n, y in codec.reconstruct(x, counts).items()
        ]
        if with_opus:
            rates = sorted(
                {
                    opus.nearest_bitrate(codec.quantizer.bandwidth(n, codec.frame_rate))
                    for n in counts
                }
            )
            clip = x[0, 0].detach().cpu().numpy()
            for rate in rates:
                coded = torch.from_numpy(opus.roundtrip(clip, sr, rate)).to(x)[None, None]
                versions.append((f"Opus {rate:g} kbps", f"{name}_opus{rate:g}", coded))
        for label, stem, y in versions:
            pages.write_audio(folder / f"{stem}.wav", y[0], sr)
            pages.write_spectrogram(folder / f"{stem}.png", y[0], sr, label)
            cells[label] = (f"{stem}.wav", f"{stem}.png")
            score = {
                "sisnr": float(si_snr_items(y, x)[0]),
                "mel_distance": float(self.mel_distance(y, x)),
                **pages.levels(y, x),
            }
            scores[label] = score
            notes[label] = (
                f"SI-SNR {score['sisnr']:.1f} dB, mel {score['mel_distance']:.2f}, "
                f"level {score['level_db']:+.1f} dB, DC {score['dc']:+.3f}"
            )
        return {"name": name, "cells": cells, "notes": notes, "scores": scores}
