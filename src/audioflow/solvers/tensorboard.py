"""What TensorBoard shows of a run, and the per-update history the XP report draws from.

Every scalar is logged against the global update step, so train, valid and evaluate curves
overlay (an epoch's metrics at the update that ended it, the epoch itself as a scalar of
its own). Per-update scalars carry the optimizer keys of the solver's metrics
(``lr/<opt>``, ``grad_norm/<opt>``) under ``optim/`` and the throughput under
``throughput/``; the generate stage's audio files and spectrogram PNGs go to the audio
and image tabs, and the XP's delta to the HPARAMS tab (one session per XP, so pointing
TensorBoard at ``<xp_root>/xps`` compares XPs).

The same per-update values are appended to ``<xp>/updates.jsonl`` (one JSON object per
logged update), the history that ``audioflow report`` and the DVC plots read.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from audioflow.config import layout
from audioflow.monitoring.facts import RunFacts, run_facts
from audioflow.monitoring.names import THROUGHPUT, is_optim_key

#: Tag prefixes of what is not a stage's own metrics: per-update train scalars and the
#: train stage's epoch means, which fall on the same steps.
STAGE_PREFIXES = {"train_updates": "train", "train": "train_epoch"}
#: At most this many generate files of each kind go to TensorBoard per epoch.
MAX_MEDIA = 8


def scalar_tag(stage: str, key: str) -> str:
    """The TensorBoard tag of one metric: optimizer keys under ``optim/``.

    Per-update train scalars are ``train/<key>``; the train stage's epoch means, logged at
    the same steps, are ``train_epoch/<key>`` so the two never mix in one curve.
    """
    if is_optim_key(key):
        return f"optim/{key}"
    if key.startswith(THROUGHPUT):
        return key
    return f"{STAGE_PREFIXES.get(stage, stage)}/{key}"


class TensorBoard:
    """Event files under ``<folder>/tensorboard`` and ``<folder>/updates.jsonl`` (rank 0).

    The writer is created at the first call, so a process that logs nothing leaves no file.

    Args:
        folder: the XP folder.
        enabled: False on ranks other than 0 and with ``logging.log_tensorboard=false``.
        facts: what the XP is (see :class:`RunFacts`); None reads the current XP's.
    """

    def __init__(self, folder: Path, enabled: bool, facts: RunFacts | None = None) -> None:
        self.xp_folder = Path(folder)
        self.folder = self.xp_folder / layout.TENSORBOARD_DIR
        self.enabled = enabled
        self._facts = facts
        self._writer = None
        self._last: tuple[float, int] | None = None  # (time, step) of the last update logged
        self._wait = [0.0, 0.0]  # data wait and update seconds since the last update logged
        self._described = False
        self._overlaid = False

    @property
    def facts(self) -> RunFacts:
        if self._facts is None:
            self._facts = run_facts()
        return self._facts

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.folder))
        return self._writer

    # -- what the loop calls -------------------------------------------------------------------
    def add(self, stage: str, metrics: dict[str, float], step: int) -> None:
        """Log metrics at the global update step (a stage's epoch turned into its last update).

        Args:
            stage: ``train_updates`` (per-update means, at the logging cadence) or a stage
                name (``train``, ``valid``, ``evaluate``, ``generate``) with its metrics.
            metrics: name -> float; ``lr/<opt>`` and ``grad_norm/<opt>`` go under ``optim/``.
            step: the global update for ``train_updates``, else the epoch (1-based).
        """
        if not self.enabled:
            return
        if stage == "train_updates":
            self._add_update(metrics, int(step))
        else:
            self._add_stage(stage, metrics, int(step))
        self.writer.flush()

    def add_timing(self, update_seconds: float, data_wait_seconds: float) -> None:
        """Count one update's time; the next logged update reports the data-wait share."""
        self._wait[0] += max(0.0, float(data_wait_seconds))
        self._wait[1] += max(0.0, float(update_seconds))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- per update --------------------------------------------------------------------------
    def _add_update(self, metrics: dict[str, float], step: int) -> None:
        self._describe()
        values = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        values.update(self._throughput(step))
        for key, value in values.items():
            self.writer.add_scalar(scalar_tag("train_updates", key), value, step)
        row = {"update": step, "time": round(time.time(), 3), **values}
        with open(self.xp_folder / layout.UPDATES_FILE, "a") as handle:
            handle.write(json.dumps(row, allow_nan=True) + "\n")

    def _throughput(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        last, self._last = self._last, (now, step)
        out = {}
        waited, busy = self._wait
        self._wait = [0.0, 0.0]
        if waited + busy > 0:
            out[THROUGHPUT + "data_wait_share"] = waited / (waited + busy)
        if last is None or step <= last[1] or now <= last[0]:
            return out  # the first update logged by this process has no interval yet
        rate = (step - last[1]) / (now - last[0])
        out[THROUGHPUT + "updates_per_second"] = rate
        facts = self.facts
        if facts.items_per_update:
            out[THROUGHPUT + "items_per_second"] = rate * facts.items_per_update
            if facts.item_seconds:
                per_second = rate * facts.items_per_update * facts.item_seconds
                out[THROUGHPUT + "audio_seconds_per_second"] = per_second
        return out

    # -- per stage ---------------------------------------------------------------------------
    def _add_stage(self, stage: str, metrics: dict[str, float], epoch: int) -> None:
        self._describe()
        step = self.update_step(epoch)
        for key, value in metrics.items():
            if _is_number(value):
                self.writer.add_scalar(scalar_tag(stage, key), float(value), step)
        self.writer.add_scalar("epoch", epoch, step)
        if stage == "valid" and not self._overlaid:
            self._overlaid = True
            self._add_overlays(metrics)
        if stage == "generate":
            self._add_samples(epoch, step)

    def update_step(self, epoch: int) -> int:
        """The global update at the end of ``epoch`` (the epoch itself when unknown)."""
        per_epoch = self.facts.updates_per_epoch
        return epoch * per_epoch if per_epoch else epoch

    def _add_samples(self, epoch: int, step: int) -> None:
        """The generate stage's WAV files (audio tab) and PNG images (image tab)."""
        folder = layout.samples_dir(self.xp_folder, self.facts.samples_dir, epoch)
        if not folder.is_dir():
            return
        import numpy as np
        import soundfile
        from matplotlib import image

        for path in sorted(folder.glob("*.wav"))[:MAX_MEDIA]:
            data, rate = soundfile.read(path, dtype="float32", always_2d=True)  # (T, C)
            self.writer.add_audio(f"generate/{path.stem}", data[:, 0], step, sample_rate=rate)
        for path in sorted(folder.glob("*.png"))[:MAX_MEDIA]:
            pixels = image.imread(path)  # (H, W, 3 or 4), floats in [0, 1]
            rgb = np.ascontiguousarray(pixels[..., :3])
            self.writer.add_image(f"generate/{path.stem}", rgb, step, dataformats="HWC")

    def _add_overlays(self, metrics: dict) -> None:
        """Custom-scalars charts drawing each valid metric over its per-update train curve."""
        import re

        charts = {
            key: ["Multiline", [f"^(train|valid)/{re.escape(key)}$"]]
            for key in sorted(metrics)
            if _is_number(metrics[key])
        }
        if charts:
            self.writer.add_custom_scalars({"train and valid": charts})

    def _describe(self) -> None:
        """The XP's overrides (text tab) and delta (HPARAMS tab), once per process.

        Only the session summaries are written, not an experiment summary: TensorBoard
        then gathers the hyperparameters of every XP it finds and offers every scalar as a
        metric column, where one XP's experiment summary would hide the others' keys.
        """
        if self._described:
            return
        self._described = True
        facts = self.facts
        if not facts.hparams:
            return
        from torch.utils.tensorboard.summary import hparams

        _, start, end = hparams(facts.hparams, {})
        self.writer.file_writer.add_summary(start)
        self.writer.file_writer.add_summary(end)
        text = "\n".join(f"    {o}" for o in facts.overrides) or "    (defaults)"
        self.writer.add_text("xp/overrides", text, 0)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
