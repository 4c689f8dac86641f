"""TokenDataset: fixed-length windows of cached codec tokens, with each item's metadata.

Like :class:`~audioflow.data.dataset.AudioDataset`, item ``i`` depends only on
``(seed, epoch, i)``: train items pick a file uniformly and a random window start;
valid/evaluate items are the first window of each file, the same every epoch.
"""

from __future__ import annotations

import numpy as np
import torch

# Sidecar fields carried with each item (what conditioners and the classifier read).
META_FIELDS = ("class", "text", "path", "duration")


class TokenDataset(torch.utils.data.Dataset):
    """Windows of ``frames`` codec frames.

    Args:
        codes: one (K, F_i) tensor per manifest entry.
        entries: the manifest entries, in the same order.
        frames: window length in frames (shorter files give shorter items).
        num_samples: items per epoch, each a random (file, start) draw; None: one item
            per file, from its start.
        shuffle: draw new windows every epoch (train).
        seed: base seed of every draw.
    """

    def __init__(
        self,
        codes: list[torch.Tensor],
        entries: list[dict],
        *,
        frames: int,
        num_samples: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ):
        if len(codes) != len(entries):
            raise ValueError(f"{len(codes)} token items for {len(entries)} manifest entries")
        if not codes:
            raise ValueError("the manifest holds no entries")
        self.codes, self.frames = codes, int(frames)
        self.infos = [{k: e[k] for k in META_FIELDS if k in e} for e in entries]
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples if self.num_samples is not None else len(self.codes)

    def __getitem__(self, index):
        """``(codes (K, f), info)`` of item ``index`` (or of an ``(epoch, index)`` pair)."""
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        rng = np.random.default_rng([self.seed % 2**63, epoch if self.shuffle else 0, index])
        if self.num_samples is None:
            pick = index % len(self.codes)
        else:
            pick = int(rng.integers(len(self.codes)))
        codes = self.codes[pick]
        start = 0
        if self.shuffle and codes.shape[-1] > self.frames:
            start = int(rng.integers(codes.shape[-1] - self.frames + 1))
        return codes[:, start : start + self.frames], self.infos[pick]


def collate_tokens(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Pad items to the longest: ``(codes (B, K, F), frames (B,), infos)``."""
    longest = max(c.shape[-1] for c, _ in batch)
    codes = torch.stack([torch.nn.functional.pad(c, (0, longest - c.shape[-1])) for c, _ in batch])
    frames = torch.tensor([c.shape[-1] for c, _ in batch], dtype=torch.long)
    return codes, frames, [info for _, info in batch]
