"""TrainSampler: a fixed number of batches per epoch, split across ranks, resumable.

An epoch is ``num_batches`` micro-batches per rank (``updates_per_epoch * accum_grad``).
Batch ``b`` of rank ``r`` holds the global item positions
``(b * world_size + r) * batch_size + j``, so ranks never share items and the positions
do not depend on the number of DataLoader workers. The sampler yields
``(epoch, index)`` pairs: workers then need no epoch state of their own, and resuming
mid-epoch (``set_start``) yields exactly the batches a run without interruption would.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class TrainSampler(Sampler):
    """Sampler of ``num_batches * batch_size`` items per epoch for one rank.

    Args:
        dataset_len: items in the dataset; positions wrap around it.
        batch_size: items per batch on this rank.
        num_batches: batches per epoch on this rank.
        world_size: number of ranks.
        rank: this rank.

    Raises:
        ValueError: a size is not positive or rank is out of range.
    """

    def __init__(
        self,
        dataset_len: int,
        batch_size: int,
        num_batches: int,
        world_size: int = 1,
        rank: int = 0,
    ):
        if min(dataset_len, batch_size, num_batches, world_size) < 1:
            raise ValueError(
                f"TrainSampler needs positive sizes, got dataset_len={dataset_len}, "
                f"batch_size={batch_size}, num_batches={num_batches}, world_size={world_size}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.dataset_len = dataset_len
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.world_size = world_size
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; resets the start batch to 0 (call ``set_start`` after)."""
        self.epoch = int(epoch)
        self.start = 0

    def set_start(self, batch_idx: int) -> None:
        """Skip the first ``batch_idx`` batches of the current epoch (mid-epoch resume)."""
        if not 0 <= batch_idx <= self.num_batches:
            raise ValueError(f"start batch {batch_idx} is not in [0, {self.num_batches}]")
        self.start = int(batch_idx)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(state["epoch"])
        self.set_start(state["start"])

    def __len__(self) -> int:
        return (self.num_batches - self.start) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        bs, world = self.batch_size, self.world_size
        for batch in range(self.start, self.num_batches):
            first = (batch * world + self.rank) * bs
            for pos in range(first, first + bs):
                yield self.epoch, pos % self.dataset_len
