"""SpeechDataset: whole utterances and their transcripts, for speech recognition.

Unlike ``AudioDataset`` (fixed-length segments drawn at random), an item is one manifest
entry read whole: a file, or the ``offset``/``duration`` span of a recording (Kaldi
segments). Items depend only on their index, so valid/evaluate see the same utterances
every time and batching (``BucketBatchSampler``) decides the order.
"""

from __future__ import annotations

import torch

from audioflow.data.audio import read_segment


class SpeechDataset(torch.utils.data.Dataset):
    """Utterances of a manifest with a ``text`` each.

    Args:
        entries: manifest entries (``read_manifest``) with ``text``.
        sample_rate: output rate (files at other rates are resampled).
        max_duration: leave out utterances longer than this (seconds); None keeps all.

    Raises:
        ValueError: no entry has a transcript, or none is short enough (message says which).
    """

    def __init__(self, entries: list[dict], sample_rate: int, max_duration: float | None = None):
        with_text = [e for e in entries if str(e.get("text") or "").strip()]
        if not with_text:
            raise ValueError(
                f"none of the {len(entries)} entries has a transcript ('text'); build the "
                "manifest from a speech corpus (see docs/data.md)"
            )
        kept = [e for e in with_text if max_duration is None or e["duration"] <= max_duration]
        if not kept:
            raise ValueError(f"every utterance lasts more than max_duration={max_duration} s")
        self.entries = kept
        self.sample_rate = int(sample_rate)
        self.epoch = 0

    @property
    def durations(self) -> list[float]:
        return [float(e["duration"]) for e in self.entries]

    def set_epoch(self, epoch: int) -> None:
        """Items do not depend on the epoch; kept for the loop's ``set_epoch`` calls."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index) -> tuple[torch.Tensor, dict]:
        """``(wav (T,), entry)``; ``index`` may be an ``(epoch, index)`` pair."""
        index = index[1] if isinstance(index, tuple) else index
        entry = self.entries[index]
        offset = float(entry.get("offset", 0.0))
        duration = float(entry["duration"]) if "offset" in entry else None
        wav = read_segment(
            entry["path"], offset, duration, self.sample_rate, 1, entry.get("sample_rate")
        )  # (1, T)
        return wav[0], entry


def collate_speech(batch: list[tuple[torch.Tensor, dict]]) -> dict:
    """Pad a batch of utterances.

    Returns:
        ``{"wav": (B, T) float, "lengths": (B,) long, "texts": [str], "entries": [dict]}``.
    """
    lengths = torch.tensor([w.shape[-1] for w, _ in batch], dtype=torch.long)
    wav = torch.zeros(len(batch), int(lengths.max()))
    for i, (w, _) in enumerate(batch):
        wav[i, : w.shape[-1]] = w
    return {
        "wav": wav,
        "lengths": lengths,
        "texts": [str(e["text"]) for _, e in batch],
        "entries": [e for _, e in batch],
    }
