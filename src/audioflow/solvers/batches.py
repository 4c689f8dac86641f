"""The micro-batches of a train epoch, resumable at any micro-batch.

An epoch is a fixed number of micro-batches (``updates_per_epoch * accum_grad``); a loader
shorter than that is iterated again. Resuming at micro-batch k yields exactly what an
uninterrupted epoch would have yielded from k on, without shifting any RNG stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from . import rng


def train_batches(
    loader, epoch: int, seed: int, start: int, total: int
) -> Iterator[tuple[int, object]]:
    """Micro-batches ``start .. total-1`` of epoch ``epoch``, re-iterating a short loader.

    Pass p of epoch E sets the sampler's epoch to E (p = 0) or E * 1000 + p, so each
    pass is a fresh deterministic order; iterators are created in an isolated RNG block
    and skipped batches are drawn there too, so resuming never shifts the RNG stream.

    Yields:
        ``(micro-batch index in the epoch, batch)``.

    Raises:
        RuntimeError: the loader yields no batch.
    """
    length = loader_length(loader)
    pos, pass_idx = 0, 0  # pos: micro index at the start of the current pass
    while pos < total:
        if length and pos + length <= start:  # a whole pass before the resume point
            pos += length
            pass_idx += 1
            continue
        skip = max(0, start - pos)
        sampler_epoch = epoch * 1000 + pass_idx if pass_idx else epoch
        with rng.isolated(rng.derive_seed(seed, "train", epoch, pass_idx)):
            iterator = _start_pass(loader, sampler_epoch, skip)
        idx = pos + skip
        for batch in iterator:
            if idx >= total:  # also when resuming with the epoch's updates all done
                return
            yield idx, batch
            idx += 1
        if idx == pos:
            raise RuntimeError("the train loader yielded no batch; check dataset.train")
        pos, pass_idx = idx, pass_idx + 1


def loader_length(loader) -> int:
    """``len(loader)``, or 0 for a loader without a length."""
    try:
        return len(loader)
    except TypeError:
        return 0


def batch_items(batch) -> int:
    """The number of samples in a batch (the first dimension of its first tensor)."""
    if torch.is_tensor(batch):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, list | tuple) and batch:
        return batch_items(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_items(next(iter(batch.values())))
    return 1


def _start_pass(loader, sampler_epoch: int, skip: int):
    """A fresh iterator positioned ``skip`` batches into the pass."""
    targets = [getattr(loader, a, None) for a in ("batch_sampler", "sampler", "dataset")]
    targets = [t for t in targets if t is not None]
    for target in targets:
        if hasattr(target, "set_epoch"):
            target.set_epoch(sampler_epoch)
    for target in targets[:2]:
        if hasattr(target, "set_start"):
            target.set_start(skip)
            skip = 0
            break
    iterator = iter(loader)
    for _ in range(skip):
        next(iterator)
    return iterator
