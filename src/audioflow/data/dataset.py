"""AudioDataset: fixed-length segments read by seeking into the files of a manifest.

Item ``i`` depends only on ``(seed, epoch, i)``: a generator seeded with those three
numbers picks the file (weighted by duration and/or a ``weight`` field, or uniform) and
the segment start. Items therefore do not depend on DataLoader workers, ranks or the
order they are asked in, training is reproducible, and with ``shuffle=False`` the epoch
is ignored so valid/evaluate see the very same segments every time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from audioflow.data.audio import read_segment
from audioflow.data.manifest import read_manifest


def _weight(entry: dict) -> float:
    try:
        weight = float(entry.get("weight", 1.0))
    except (TypeError, ValueError):
        weight = math.nan
    # NaN or infinity would make every draw pick one file, silently.
    if not math.isfinite(weight) or isinstance(entry.get("weight"), bool):
        raise ValueError(
            f"{entry['path']}: 'weight' must be a finite number, got {entry['weight']!r}; "
            "fix its sidecar .json and rescan"
        )
    return weight


# Files checked for existence when a dataset is opened: all of a small manifest, an even
# spread of a large one (a stat costs a network round trip on shared volumes).
EXISTENCE_SAMPLE = 256


def check_files_exist(entries: list[dict], sample: int = EXISTENCE_SAMPLE) -> None:
    """Stat the audio files of a manifest (every one, or ``sample`` spread evenly).

    Raises:
        ValueError: a listed file is missing (the message names the first one found).
    """
    if not entries:
        return
    step = max(1, len(entries) // sample)
    checked = entries[::step][:sample]
    missing = [e["path"] for e in checked if not Path(e["path"]).is_file()]
    if missing:
        more = (
            f" (and {len(missing) - 1} more of {len(checked)} checked)" if len(missing) > 1 else ""
        )
        raise ValueError(
            f"audio file {missing[0]} is listed in the manifest but does not exist{more}; "
            "restore the files or rebuild the manifest with `audioflow manifest`"
        )


class AudioDataset(torch.utils.data.Dataset):
    """Segments of the audio files listed in a manifest.

    Args:
        entries: manifest entries (``read_manifest``): absolute ``path``, ``duration``,
            ``sample_rate``, ``channels`` and any metadata (``text``, labels, ``weight``).
        sample_rate: output sample rate; files at other rates are resampled.
        channels: output channels (mono averages, mono input is repeated).
        segment_duration: seconds per item; None returns whole files (use ``collate``
            to pad a batch).
        num_samples: items per epoch, each a random (file, start) draw; None gives one
            item per file, in manifest order.
        shuffle: draw new segments every epoch (train). False ignores the epoch, so
            every epoch sees the same items (valid/evaluate).
        sample_on_duration: pick files with probability proportional to their duration.
        sample_on_weight: also multiply by each entry's ``weight`` (default 1).
        min_segment_ratio: files shorter than this fraction of a segment are dropped;
            shorter reads are zero-padded to the full segment.
        return_info: items are ``(wav, info)`` with the entry's metadata, else ``wav``.
        seed: base seed of every draw.

    Raises:
        ValueError: no entry is long enough, or a ``weight`` is negative.
    """

    def __init__(
        self,
        entries: list[dict],
        *,
        sample_rate: int,
        channels: int,
        segment_duration: float | None = None,
        num_samples: int | None = None,
        shuffle: bool = True,
        sample_on_duration: bool = True,
        sample_on_weight: bool = True,
        min_segment_ratio: float = 0.5,
        return_info: bool = False,
        seed: int = 0,
    ):
        if segment_duration is not None:
            shortest = min_segment_ratio * segment_duration
            kept = [e for e in entries if e["duration"] >= shortest]
            if not kept:
                raise ValueError(
                    f"no file of {len(entries)} lasts {shortest:.3f}s "
                    f"(min_segment_ratio {min_segment_ratio} x segment_duration "
                    f"{segment_duration}); lower dataset.segment_duration"
                )
            entries = kept
        if not entries:
            raise ValueError("the manifest holds no entries")
        self.entries = entries
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.segment_duration = segment_duration
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.return_info = return_info
        self.seed = int(seed)
        self.epoch = 0
        weights = np.ones(len(entries))
        if sample_on_duration:
            weights *= np.array([float(e["duration"]) for e in entries])
        if sample_on_weight:
            given = np.array([_weight(e) for e in entries])
            if (given < 0).any():
                bad = entries[int(np.argmax(given < 0))]["path"]
                raise ValueError(f"{bad}: negative 'weight' in the manifest; use 0 or more")
            weights *= given
        if weights.sum() <= 0:
            raise ValueError("every file has weight 0: nothing to sample")
        self._cumulative = np.cumsum(weights / weights.sum())

    @classmethod
    def from_manifest(cls, path: str | Path, **kwargs) -> AudioDataset:
        """Build from a manifest file (relative paths resolved against its folder).

        Raises:
            ValueError: see the class; also a listed audio file that does not exist
                (:func:`check_files_exist`).
        """
        entries = read_manifest(path)
        check_files_exist(entries)
        return cls(entries, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws ``__getitem__`` returns (ignored if not shuffle)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples if self.num_samples is not None else len(self.entries)

    def _rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed % 2**63, epoch if self.shuffle else 0, index])

    def draw(self, epoch: int, index: int) -> tuple[int, float]:
        """Which file and start item ``index`` of ``epoch`` reads (no I/O).

        Returns:
            ``(entry position, seek time in seconds)``.
        """
        rng = self._rng(int(epoch), int(index))
        if self.num_samples is None:
            pick = index % len(self.entries)
        else:
            pick = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
            pick = min(pick, len(self.entries) - 1)
        seek_time, seg = 0.0, self.segment_duration
        if seg is not None and (self.shuffle or self.num_samples is not None):
            seek_time = float(rng.uniform(0.0, max(0.0, self.entries[pick]["duration"] - seg)))
        return pick, seek_time

    def __getitem__(self, index):
        """Item ``index`` of the current epoch, or of ``epoch`` for an ``(epoch, index)``
        pair (what ``TrainSampler`` yields, so workers need no epoch of their own)."""
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        pick, seek_time = self.draw(epoch, index)
        entry, seg = self.entries[pick], self.segment_duration
        try:
            wav = read_segment(
                entry["path"], seek_time, seg, self.sample_rate, self.channels, entry["sample_rate"]
            )  # (C, T')
        except RuntimeError as err:  # soundfile.LibsndfileError is a RuntimeError
            raise RuntimeError(
                f"{entry['path']}: cannot read at {seek_time:.3f}s ({err}); the file may be "
                "truncated: rebuild the manifest with `audioflow manifest --check-tail`"
            ) from err
        n_frames = wav.shape[-1]
        if seg is not None:
            target = int(round(seg * self.sample_rate))
            if n_frames < target:
                wav = torch.nn.functional.pad(wav, (0, target - n_frames))
        if not self.return_info:
            return wav
        info = dict(entry)
        info.update(
            index=int(index),
            seek_time=seek_time,
            n_frames=n_frames,
            total_frames=wav.shape[-1],
            orig_sample_rate=entry["sample_rate"],
            orig_channels=entry["channels"],
            sample_rate=self.sample_rate,
            channels=self.channels,
        )
        return wav, info


def collate(batch: list):
    """Stack items into (B, C, T), zero-padding to the longest (whole-file items).

    Returns:
        ``wav`` or ``(wav, infos)`` when the items carry info dicts.
    """
    with_info = isinstance(batch[0], tuple)
    wavs = [item[0] for item in batch] if with_info else list(batch)
    longest = max(w.shape[-1] for w in wavs)
    if any(w.shape[-1] != longest for w in wavs):
        wavs = [torch.nn.functional.pad(w, (0, longest - w.shape[-1])) for w in wavs]
    wav = torch.stack(wavs)  # (B, C, T)
    return (wav, [item[1] for item in batch]) if with_info else wav
