"""Codebook interleaving patterns: how K parallel token streams become one LM sequence.

A codec frame holds K codes (one per RVQ codebook). The LM predicts, at each sequence
step, one token per codebook. With the **delay** pattern (MusicGen), codebook ``k`` is
shifted right by ``k`` steps, so when step ``s`` predicts codebook ``k`` of frame
``s - k`` it has already seen the coarser codebooks ``< k`` of that frame; the sequence
is ``K - 1`` steps longer than the frames. The **parallel** pattern predicts every
codebook of a frame at once (no shift: fastest, weaker). Positions a pattern leaves
empty hold the special token ``card`` (one past the last code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PATTERNS = ("delay", "parallel")


@dataclass(frozen=True)
class CodebookPattern:
    """Per-codebook delays of an interleaving pattern.

    Args:
        delays: ``delays[k]`` steps codebook ``k`` is shifted by (non-negative).
    """

    delays: tuple[int, ...]

    @property
    def n_q(self) -> int:
        return len(self.delays)

    @property
    def max_delay(self) -> int:
        return max(self.delays)

    def sequence_length(self, frames: int) -> int:
        """Sequence steps needed for ``frames`` codec frames."""
        return frames + self.max_delay

    def interleave(self, codes: torch.Tensor, special: int) -> torch.Tensor:
        """Codes (B, K, F) -> sequence (B, K, F + max_delay), empty positions ``special``."""
        batch, k, frames = codes.shape
        self._check(k)
        seq = codes.new_full((batch, k, self.sequence_length(frames)), special)
        for q, delay in enumerate(self.delays):
            seq[:, q, delay : delay + frames] = codes[:, q]
        return seq

    def deinterleave(self, seq: torch.Tensor) -> torch.Tensor:
        """Sequence (B, K, S) -> codes (B, K, S - max_delay): the inverse of interleave."""
        k, steps = seq.shape[1], seq.shape[2]
        self._check(k)
        frames = steps - self.max_delay
        if frames < 0:
            raise ValueError(f"a sequence of {steps} steps is shorter than the pattern's delay")
        return torch.stack(
            [seq[:, q, delay : delay + frames] for q, delay in enumerate(self.delays)], dim=1
        )

    def valid_mask(self, frames: torch.Tensor | int, steps: int) -> torch.Tensor:
        """Which sequence positions hold a real code.

        Args:
            frames: codec frames per item, (B,) long tensor (or one int for all).
            steps: sequence length S.

        Returns:
            Bool (B, K, S) (B = 1 for an int ``frames``).
        """
        frames = torch.as_tensor(frames).reshape(-1, 1, 1)  # (B, 1, 1)
        delays = torch.tensor(self.delays).reshape(1, -1, 1)  # (1, K, 1)
        pos = torch.arange(steps).reshape(1, 1, -1)  # (1, 1, S)
        return (pos >= delays) & (pos < delays + frames)

    def _check(self, k: int) -> None:
        if k != self.n_q:
            raise ValueError(f"the pattern has {self.n_q} codebooks, the codes have {k}")


def build_pattern(name: str, n_q: int) -> CodebookPattern:
    """The named pattern over ``n_q`` codebooks.

    Raises:
        ValueError: unknown name or ``n_q`` < 1.
    """
    if n_q < 1:
        raise ValueError(f"n_q={n_q}: a pattern needs at least one codebook")
    if name == "delay":
        return CodebookPattern(tuple(range(n_q)))
    if name == "parallel":
        return CodebookPattern((0,) * n_q)
    raise ValueError(f"pattern={name!r} is not known: choose one of {', '.join(PATTERNS)}")
