"""Per-update reports of the train loop: TensorBoard at the logging cadence, the stage
monitor at every update, each with the update's ``lr/<opt>`` and ``grad_norm/<opt>``."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import logs


class UpdateReporter:
    """Where the numbers of each finished update go.

    Args:
        tensorboard: the solver's :class:`~audioflow.solvers.tensorboard.TensorBoard`.
        rank_zero: whether this process writes TensorBoard (rank 0).
        samples_per_update: the global batch of an update (``batch_size * accum_grad``).
        clock: the solver's clock, in seconds.
    """

    def __init__(
        self,
        tensorboard,
        rank_zero: bool,
        samples_per_update: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.tensorboard = tensorboard
        self.rank_zero = rank_zero
        self.samples_per_update = samples_per_update
        self.clock = clock

    def report(self, shown, metrics, window, t_step, t_wait, progress, monitor, step) -> None:
        """Report one finished update.

        Args:
            shown: the running means shown at this update, or None off the logging cadence.
            metrics: the metrics of the update's last micro-batch.
            window: the update's :class:`~audioflow.optim.WindowResult`.
            t_step, t_wait: clock times at which that micro-batch started, and at which
                the wait for its batch started.
            progress: the stage's :class:`~audioflow.solvers.logs.Progress`.
            monitor: the stage's monitor, or None.
            step: the global update index (TensorBoard's step).
        """
        if self.rank_zero:  # the data-wait share TensorBoard reports at its cadence
            self.tensorboard.add_timing(self.clock() - t_step, t_step - t_wait)
        active = monitor is not None and getattr(monitor, "active", True)
        logged = self.rank_zero and shown is not None
        if not active and not logged:
            return  # nothing reads this update: no host read of the grad norms
        optim = logs.scalar_floats(window.metrics())
        if logged:
            self.tensorboard.add("train_updates", {**shown, **optim}, step)
        if active:
            # plain floats, as the monitor expects (only an active monitor pays the host
            # read, one per device rather than one per metric)
            metrics = {**logs.scalar_floats(metrics), **optim}
            monitor.update(
                metrics,
                window.lrs,
                self.samples_per_update,
                self.clock() - t_step,
                t_step - t_wait,
                progress.done / max(1, progress.total),
                progress.eta(),
            )
