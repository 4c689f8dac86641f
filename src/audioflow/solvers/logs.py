"""What a running solver reports: log files per rank, progress and averages.

TensorBoard lives in :mod:`audioflow.solvers.tensorboard` (re-exported here).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import torch

from audioflow.monitoring import names

from .tensorboard import TensorBoard  # noqa: F401 - the solver builds it as logs.TensorBoard

LOGGER_NAME = "audioflow.solver"
_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_logger(folder: Path, rank: int, level: str = "INFO") -> logging.Logger:
    """The solver logger: ``solver.log`` (rank 0) or ``solver.<rank>.log``, rank 0 also on stderr.

    Handlers from a previous solver in the same process are replaced, not stacked.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = False
    name = "solver.log" if rank == 0 else f"solver.{rank}.log"
    handler = logging.FileHandler(Path(folder) / name)
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    if rank == 0:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(stream)
    return logger


def scalar_floats(metrics: dict) -> dict[str, float]:
    """The scalar entries of ``metrics`` (one-element tensors, numbers) as plain floats.

    Values equal ``float(v)``; tensors on an accelerator are read in one transfer per
    (device, dtype) instead of one host sync per metric.
    """
    out: dict[str, float] = {}
    groups: dict[tuple, list[tuple[str, torch.Tensor]]] = {}
    for key, value in metrics.items():
        if torch.is_tensor(value):
            if value.numel() != 1:
                continue
            if value.device.type == "cpu":
                out[key] = float(value)
            else:
                groups.setdefault((value.device, value.dtype), []).append((key, value))
        elif isinstance(value, int | float):
            out[key] = float(value)
    if not groups:
        return out
    for items in groups.values():
        read = torch.stack([v.detach().reshape(()) for _, v in items]).tolist()
        out.update((key, float(v)) for (key, _), v in zip(items, read))
    return {key: out[key] for key in metrics if key in out}


def format_metrics(metrics: dict) -> str:
    """``loss=0.1234 | acc=0.9`` with 4 significant digits."""
    return " | ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))


#: Metrics a progress bar shows at most: more would not fit 100 columns beside the bar.
PROGRESS_KEYS = 3


def progress_keys(solver) -> tuple[str, ...]:
    """The metrics a solver's progress bar shows: its ``progress_metrics``, then the best metric.

    Args:
        solver: a solver; ``progress_metrics`` (class attribute) and ``best_metric()`` are
            optional.

    Returns:
        At most :data:`PROGRESS_KEYS` names, in order, without repeats.
    """
    keys = list(getattr(solver, "progress_metrics", ()) or ())
    best = getattr(solver, "best_metric", None)
    best = best() if callable(best) else None
    configured = getattr(getattr(solver, "cfg", None), "best", None)
    best = (configured.get("metric") if configured is not None else None) or best
    if best:
        keys = [k for k in keys if k != best][: PROGRESS_KEYS - 1] + [best]
    return tuple(dict.fromkeys(keys))[:PROGRESS_KEYS]


def key_metrics(metrics: dict, keys: tuple[str, ...] | None = None) -> dict:
    """The few metrics a progress bar shows.

    Args:
        metrics: all the step's metrics.
        keys: the names to show (see :func:`progress_keys`); None: the losses first
            (:func:`~audioflow.monitoring.names.is_loss_name`), then the others, in order.

    Returns:
        At most :data:`PROGRESS_KEYS` entries; optimizer keys (``lr/``, ``grad_norm/``)
        are left to TensorBoard.
    """
    if keys:
        return {k: metrics[k] for k in keys if k in metrics}
    shown = [k for k in metrics if not names.is_optim_key(k)]
    shown.sort(key=lambda k: not names.is_loss_name(k))  # stable: the given order otherwise
    return {k: metrics[k] for k in shown[:PROGRESS_KEYS]}


class Averager:
    """Running mean of step metrics, kept as tensors so a step never waits on the device.

    A step only appends its detached values; every ``FOLD`` values are summed into a float64
    total. Folding at fixed counts (never when a result is read or a checkpoint written)
    keeps the summation order, hence the means, identical between an uninterrupted epoch
    and a resumed one; the state goes into mid-epoch checkpoints.
    """

    FOLD = 32
    #: Keys whose latest value is reported rather than a mean: a learning rate is a setting
    #: of the update, and its mean over the epoch so far is nobody's learning rate.
    LATEST = (names.LR,)

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.pending: dict[str, list[torch.Tensor]] = {}
        self.counts: dict[str, int] = {}
        self.latest: dict[str, torch.Tensor] = {}

    def add(self, metrics: dict) -> None:
        """Add one step's metrics (scalar tensors or numbers; anything else is ignored)."""
        for key, value in metrics.items():
            if key.startswith(self.LATEST):
                if torch.is_tensor(value) and value.numel() == 1:
                    self.latest[key] = value.detach()
                elif isinstance(value, int | float):
                    self.latest[key] = torch.tensor(float(value), dtype=torch.float64)
                continue
            if torch.is_tensor(value):
                if value.numel() != 1:
                    continue
                value = value.detach()
            elif isinstance(value, int | float):
                value = torch.tensor(float(value), dtype=torch.float64)
            else:
                continue
            pending = self.pending.setdefault(key, [])
            pending.append(value)
            self.counts[key] = self.counts.get(key, 0) + 1
            if len(pending) == self.FOLD:
                self.sums[key] = self._total(key)
                pending.clear()

    def _total(self, key: str) -> torch.Tensor:
        pending = self.pending.get(key) or []
        total = self.sums.get(key)
        if pending:
            part = torch.stack([v.reshape(()).to(torch.float64) for v in pending]).sum()
            total = part if total is None else total + part.to(total.device)
        return total

    def result(self) -> dict[str, float]:
        """The mean of every metric seen so far, as floats (one host read per device)."""
        totals = scalar_floats({k: self._total(k) for k in self.counts})
        means = {k: totals[k] / n for k, n in self.counts.items()}
        return {**means, **scalar_floats(self.latest)}

    def state_dict(self) -> dict:
        return {
            "sums": {k: v.cpu() for k, v in self.sums.items()},
            "pending": {k: [v.cpu() for v in vs] for k, vs in self.pending.items()},
            "counts": dict(self.counts),
            "latest": {k: v.cpu() for k, v in self.latest.items()},
        }

    def load_state_dict(self, state: dict, device: torch.device | None = None) -> None:
        def move(v):
            return v.to(device) if device is not None else v

        self.sums = {k: move(v) for k, v in state["sums"].items()}
        self.pending = {k: [move(v) for v in vs] for k, vs in state["pending"].items()}
        self.counts = dict(state["counts"])
        self.latest = {k: move(v) for k, v in state.get("latest", {}).items()}


class Progress:
    """Progress of one stage: a tqdm bar on a terminal, periodic log lines otherwise.

    Args:
        logger: where the non-terminal lines go.
        label: e.g. ``"train 3/10"``.
        total: steps in the stage; ``start``: steps already done (resumed).
        every: log/refresh period in steps.
        enabled: False on ranks other than 0.
        keys: the metrics the bar shows (see :func:`progress_keys`); the log lines written
            off a terminal show every metric.
    """

    def __init__(
        self,
        logger,
        label: str,
        total: int,
        start: int,
        every: int,
        enabled: bool,
        keys: tuple[str, ...] | None = None,
    ):
        self.logger, self.label, self.total, self.every = logger, label, total, max(1, every)
        self.keys = keys
        self.done = start
        self.start_done = start
        self.t0 = time.perf_counter()
        self.bar = None
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            # no fixed width: the bar follows the terminal, and a short postfix leaves it room
            self.bar = tqdm(
                total=total,
                initial=start,
                desc=label,
                unit="step",
                leave=False,
                dynamic_ncols=True,
            )

    def due_next(self) -> bool:
        """Whether the step about to be counted should refresh the display."""
        upcoming = self.done + 1
        return self.enabled and (upcoming % self.every == 0 or upcoming == self.total)

    def rate(self) -> float:
        """Steps per second since the stage (re)started."""
        elapsed = time.perf_counter() - self.t0
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else math.inf

    def step(self, metrics: dict[str, float] | None = None) -> None:
        """Count one step; ``metrics`` (when due) are shown."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if metrics is not None:
                shown = key_metrics(metrics, self.keys)
                self.bar.set_postfix_str(format_metrics(shown).replace(" | ", " "), refresh=False)
        elif metrics is not None and self.enabled and self.logger.isEnabledFor(logging.INFO):
            eta = self.eta()
            eta_text = f"{eta:.0f}s" if math.isfinite(eta) else "?"
            self.logger.info(
                "%s | %d/%d | %s | %.2f step/s | eta %s",
                self.label,
                self.done,
                self.total,
                format_metrics(metrics),
                self.rate(),
                eta_text,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
