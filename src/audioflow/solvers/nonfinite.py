"""Non-finite values in a run: skipped updates, and the errors that stop a stage.

audioflow.optim skips an update per optimizer when its gradients are not finite; the loop
counts each optimizer's skips in a row (``LoopState.nonfinite``, checkpointed) and stops
the run past ``optim.max_nonfinite``. A stage whose metrics or trained weights are not
finite is never recorded as done. See docs/solvers.md.
"""

from __future__ import annotations

import logging
import math

import torch

from .state import LoopState, StateManager

# What each error here tells the user to try.
REMEDY = "lower optim.lr, check the data, or use precision=fp32"


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates had a non-finite loss (``optim.max_nonfinite``)."""


class NonFiniteStageError(RuntimeError):
    """A stage ended with non-finite weights or metrics: it is not recorded as done."""


def is_nonfinite(value) -> bool:
    """Whether a scalar metric (one-element tensor or float) is NaN or infinite."""
    if torch.is_tensor(value):
        return value.numel() == 1 and not bool(torch.isfinite(value).all())
    return isinstance(value, float) and not math.isfinite(value)


def count_skips(loop: LoopState, window) -> bool:
    """Advance each optimizer's run of skipped updates by one update's outcome.

    Args:
        loop: the loop counters (``nonfinite`` streaks and ``skipped`` are updated).
        window: the update's :class:`~audioflow.optim.WindowResult`.

    Returns:
        Whether some optimizer skipped this update.
    """
    skipped = window.skipped
    for name in window.outcomes:
        loop.nonfinite[name] = loop.nonfinite.get(name, 0) + 1 if name in skipped else 0
    if skipped:
        loop.skipped += 1
    return bool(skipped)


def check_streak(
    pending: list[dict], window, loop: LoopState, epoch: int, limit: int, logger: logging.Logger
) -> None:
    """Warn about a skipped update, naming what was not finite; stop past ``limit`` in a row.

    Args:
        pending: the metrics of the update's micro-batches.
        window: the update's :class:`~audioflow.optim.WindowResult`.
        loop: the loop counters, streaks already counted (:func:`count_skips`).
        epoch: the epoch in progress.
        limit: ``optim.max_nonfinite``.
        logger: where the warning goes.

    Raises:
        NonFiniteLossError: an optimizer skipped more than ``limit`` consecutive updates.
    """
    bad = {k for m in pending for k, v in m.items() if is_nonfinite(v)}
    bad = sorted(k for k in bad if not k.startswith(("grad_norm/", "lr/")))
    what = f"loss {', '.join(bad)}" if bad else "gradients"
    names = window.skipped
    if window.moved:  # some optimizers moved: name the ones that did not
        what = f"{what} ({', '.join(names)})"
    streak = max(loop.nonfinite[n] for n in names)
    logger.warning(
        "epoch %d update %d: non-finite %s, update skipped (%d in a row)",
        epoch,
        loop.update,
        what,
        streak,
    )
    if streak > limit:
        raise NonFiniteLossError(
            f"{streak} consecutive updates with non-finite {what} (epoch "
            f"{epoch}, update {loop.update}) exceeds optim.max_nonfinite={limit}; {REMEDY}"
        )


def kept_metrics(pending: list[dict], window) -> list[dict]:
    """The metrics of an update that the running means keep.

    All of them when nothing skipped; none when no optimizer moved; otherwise the finite
    ones (the metrics follow the optimizers that moved).
    """
    if not window.skipped:
        return pending
    if not window.moved:
        return []
    return [{k: v for k, v in m.items() if not is_nonfinite(v)} for m in pending]


def check_metrics(stage: str, epoch: int, metrics: dict) -> None:
    """Refuse to record a stage whose metrics hold NaN or inf.

    Raises:
        NonFiniteStageError: naming the metrics.
    """
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise NonFiniteStageError(
            f"{stage} epoch {epoch}: non-finite metrics {bad}; the stage is not "
            f"recorded as done ({REMEDY})"
        )


def check_weights(epoch: int, stateful: StateManager) -> None:
    """Refuse to record an epoch whose trained weights hold NaN or inf.

    Raises:
        NonFiniteStageError: naming the module and tensor.
    """
    bad = stateful.nonfinite_tensor()
    if bad is not None:
        raise NonFiniteStageError(
            f"train epoch {epoch}: {bad} holds non-finite values; the epoch is not "
            f"recorded as done ({REMEDY})"
        )
