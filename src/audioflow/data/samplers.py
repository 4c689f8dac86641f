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


class _EpochBatches(Sampler):
    """An epoch of ``num_batches`` batches per rank that resumes at a batch: the epoch and
    start batch are the whole state (``set_epoch``, ``set_start``, ``state_dict``)."""

    num_batches: int
    epoch: int = 0
    start: int = 0

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


class TrainSampler(_EpochBatches):
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

    def __len__(self) -> int:
        return (self.num_batches - self.start) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        bs, world = self.batch_size, self.world_size
        for batch in range(self.start, self.num_batches):
            first = (batch * world + self.rank) * bs
            for pos in range(first, first + bs):
                yield self.epoch, pos % self.dataset_len


class BucketBatchSampler(_EpochBatches):
    """Batches of utterances of similar length, so padding does not dominate.

    Each pass draws a permutation keyed by ``(seed, epoch, pass)``, cuts it into pools of
    ``bucket_batches`` batches, sorts each pool by duration and cuts it into batches,
    then shuffles the batches. With ``bucketing=False`` the pools are left unsorted
    (plain random batches, the baseline of benchmarks/asr_throughput.py). Global batch
    ``b`` goes to rank ``b % world_size``; an epoch is ``num_batches`` batches per rank,
    passes following one another as needed; ``set_start`` resumes mid-epoch exactly.
    Batches are lists of ``(epoch, index)`` pairs, as ``TrainSampler`` yields.

    Args:
        durations: seconds of each utterance (dataset order).
        batch_size: utterances per batch on this rank.
        num_batches: batches per epoch on this rank; None: one pass over the data.
        world_size: number of ranks.
        rank: this rank.
        seed: base seed of the draws.
        shuffle: draw a new order every epoch (train); False: one fixed order, sorted by
            duration when bucketing (valid/evaluate).
        bucketing: sort pools by duration.
        bucket_batches: batches per sorted pool (larger pools pad less, mix less).

    Raises:
        ValueError: a size is not positive, or rank is out of range.
    """

    def __init__(
        self,
        durations,
        batch_size: int,
        num_batches: int | None = None,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        bucketing: bool = True,
        bucket_batches: int = 32,
    ):
        import numpy as np

        self.durations = np.asarray(durations, dtype=float)
        if min(len(self.durations), batch_size, world_size, bucket_batches) < 1:
            raise ValueError(
                f"BucketBatchSampler needs positive sizes, got {len(self.durations)} items, "
                f"batch_size={batch_size}, world_size={world_size}, "
                f"bucket_batches={bucket_batches}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.batch_size, self.world_size, self.rank = batch_size, world_size, rank
        self.seed, self.shuffle = int(seed), shuffle
        self.bucketing, self.bucket_batches = bucketing, bucket_batches
        per_pass = -(-len(self.durations) // batch_size)  # ceil
        if not shuffle:  # one fixed pass, every item once over the ranks (valid/evaluate)
            self.num_batches = len(range(rank, per_pass, world_size))
        else:
            self.num_batches = num_batches or max(1, per_pass // world_size)
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return self.num_batches - self.start

    def _pass(self, pass_idx: int) -> list[list[int]]:
        """The global batches of one pass over the data."""
        import numpy as np

        n, bs = len(self.durations), self.batch_size
        epoch = self.epoch if self.shuffle else 0
        rng = np.random.default_rng([self.seed % 2**63, epoch, pass_idx])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        pool = bs * self.bucket_batches if self.shuffle else n
        batches = []
        for first in range(0, n, pool):
            chunk = order[first : first + pool]
            if self.bucketing:  # stable: equal durations keep the drawn order
                chunk = chunk[np.argsort(self.durations[chunk], kind="stable")]
            batches.extend(chunk[i : i + bs].tolist() for i in range(0, len(chunk), bs))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        seen, pass_idx, mine = 0, 0, []
        while len(mine) < self.num_batches:
            batches = self._pass(pass_idx)
            # global batch numbers run on across passes, so a pass whose batch count does
            # not divide over the ranks still gives every rank its share in turn
            mine.extend(b for j, b in enumerate(batches, seen) if j % self.world_size == self.rank)
            seen += len(batches)
            pass_idx += 1
        for batch in mine[self.start : self.num_batches]:
            yield [(self.epoch, i) for i in batch]
