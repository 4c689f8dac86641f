"""TrainSampler: exact batch counts, disjoint ranks, epochs and mid-epoch resume."""

from __future__ import annotations

import pytest

from audioflow.data.samplers import TrainSampler


def _batches(sampler):
    items = list(sampler)
    bs = sampler.batch_size
    return [items[i : i + bs] for i in range(0, len(items), bs)]


def test_exact_batches_and_disjoint_ranks():
    ranks = [TrainSampler(1000, 4, 6, world_size=2, rank=r) for r in range(2)]
    per_rank = [_batches(s) for s in ranks]
    assert [len(b) for b in per_rank] == [6, 6]
    assert all(len(batch) == 4 for b in per_rank for batch in b)
    indices = [i for b in per_rank for batch in b for _, i in batch]
    assert len(set(indices)) == 48  # no item drawn twice across ranks
    assert all(epoch == 0 for b in per_rank for batch in b for epoch, _ in batch)


def test_epochs_and_wraparound():
    sampler = TrainSampler(10, 4, 5)
    sampler.set_epoch(3)
    items = list(sampler)
    assert len(items) == len(sampler) == 20
    assert {e for e, _ in items} == {3}
    assert [i for _, i in items] == [p % 10 for p in range(20)]


def test_resume_yields_the_remaining_batches():
    full = _batches(TrainSampler(100, 2, 8, world_size=2, rank=1))
    resumed = TrainSampler(100, 2, 8, world_size=2, rank=1)
    resumed.load_state_dict({"epoch": 0, "start": 5})
    assert len(resumed) == 6
    assert _batches(resumed) == full[5:]
    assert resumed.state_dict() == {"epoch": 0, "start": 5}
    resumed.set_epoch(1)  # the next epoch starts from its first batch
    assert resumed.start == 0 and len(resumed) == 16


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive sizes"):
        TrainSampler(0, 4, 2)
    with pytest.raises(ValueError, match="rank 2 is not in"):
        TrainSampler(10, 4, 2, world_size=2, rank=2)
    with pytest.raises(ValueError, match="start batch 9"):
        TrainSampler(10, 4, 2).set_start(9)
