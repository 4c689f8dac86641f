"""Which epochs each stage of an XP runs at, and which earlier stages each one waits for.

Training is cut into jobs of ``epochs_per_job`` epochs; a job ends at a *chunk end*.
Validation runs once per epoch. The dependency rules keep training flowing while the
previous epoch validates, yet never let it run more than one epoch ahead:

- train chunk [S, E] waits for train S-1 (its checkpoint) and valid S-2;
- valid E waits for the train chunk containing E and for valid E-1 (the best state is
  updated in epoch order);
- evaluate E and generate E wait for valid E (they use the best state so far).
"""

from __future__ import annotations


def chunk_ends(epochs: int, per_job: int) -> list[int]:
    """Last epoch of every train job, e.g. ``chunk_ends(5, 2) == [2, 4, 5]``.

    Raises:
        ValueError: epochs or per_job below 1.
    """
    if epochs < 1 or per_job < 1:
        raise ValueError(f"epochs ({epochs}) and epochs_per_job ({per_job}) must be >= 1")
    return [*range(per_job, epochs, per_job), epochs]


def chunk_end(epoch: int, epochs: int, per_job: int) -> int:
    """The end of the train chunk that contains ``epoch``."""
    return min(-(-epoch // per_job) * per_job, epochs)


def train_dependencies(end: int, epochs: int, per_job: int) -> tuple[int | None, int | None]:
    """What the train job ending at ``end`` waits for.

    Args:
        end: a chunk end from :func:`chunk_ends`.
        epochs: total epochs of the XP.
        per_job: epochs per train job.

    Returns:
        ``(previous train chunk end, valid epoch)``; either is None when there is none.

    Raises:
        ValueError: ``end`` is not a chunk end.
    """
    if end not in (epochs, *range(per_job, epochs, per_job)):
        raise ValueError(f"epoch {end} is not the end of a train job of {per_job} epoch(s)")
    start = end - per_job + 1 if end % per_job == 0 else end - end % per_job + 1
    previous = start - 1 if start > 1 else None
    valid = start - 2 if start > 2 else None
    return previous, valid


def every_epochs(epochs: int, every: int) -> list[int]:
    """Epochs at which a periodic stage runs: each multiple of ``every`` and the last.

    ``every`` of 0 (or below) means the last epoch only.
    """
    picked = list(range(every, epochs + 1, every)) if every > 0 else []
    if epochs not in picked:
        picked.append(epochs)
    return picked
