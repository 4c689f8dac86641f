"""StageMonitor: what the solver calls to export live metrics while a stage runs.

Rank 0 serves the metrics over HTTP on ``monitoring.port`` (``/metrics``, Prometheus text
format) and, when ``monitoring.pushgateway`` is set, pushes a stage summary at the end.
Every other rank, and rank 0 with both off, gets an inert monitor whose methods do
nothing, so the solver calls it unconditionally.

Several stages of one workflow may run at once on one machine (validate epoch E while
training epoch E+1), so when the configured port is taken the next free one among
``port .. port + PORT_SPAN - 1`` is used; the shipped local scrape config lists that range.

This module imports nothing heavy: prometheus_client is imported only by an active monitor.
"""

from __future__ import annotations

import json
import logging
import os
import time

# A child of the solver's logger (audioflow.solvers.logs.LOGGER_NAME): its lines go to
# solver.log and the terminal like the solver's own, where a logger of its own had no handler.
LOGGER_NAME = "audioflow.solver.monitoring"
logger = logging.getLogger(LOGGER_NAME)

PORT_SPAN = 8


class StageMonitor:
    """Live Prometheus metrics of one stage of one XP.

    Args:
        sig: XP signature (label ``signature``).
        stage: stage name (label ``stage``): train, valid, evaluate or generate.
        rank: distributed rank; only rank 0 exports.
        port: first HTTP port to try for ``/metrics``; 0 serves nothing.
        pushgateway: Pushgateway address for the end-of-stage summary; None pushes nothing.
        facts: what the XP is (:class:`~audioflow.monitoring.facts.RunFacts`); None reads
            the current XP's when the monitor is active.
    """

    def __init__(
        self,
        sig: str,
        stage: str,
        rank: int,
        port: int,
        pushgateway: str | None = None,
        facts=None,
    ) -> None:
        self.sig = sig
        self.stage = stage
        self.rank = int(rank)
        self.requested_port = int(port or 0)
        self.pushgateway = pushgateway or None
        self.active = self.rank == 0 and (self.requested_port != 0 or self.pushgateway is not None)
        self.port: int | None = None  # the port actually bound, once started
        self.metrics = None
        self._server = None
        self._thread = None
        self._start_time: float | None = None
        self._finished = False
        self._epoch: int | None = None
        self._facts = facts
        if self.active:
            from audioflow.monitoring.metrics import StageMetrics

            self.metrics = StageMetrics(sig, stage, self.rank, facts=self.facts)

    @property
    def facts(self):
        if self._facts is None:
            from audioflow.monitoring.facts import run_facts

            self._facts = run_facts()
        return self._facts

    @property
    def registry(self):
        """The monitor's own CollectorRegistry (None when inert)."""
        return None if self.metrics is None else self.metrics.registry

    def start(self) -> None:
        """Record the start time and begin serving ``/metrics`` (rank 0, port != 0).

        A port range with no free port is logged as a warning and the stage runs without
        live metrics: monitoring never stops training.
        """
        if self.rank != 0 or self._start_time is not None:
            return
        self._start_time = time.time()
        if not self.active:
            return
        self.metrics.started(self._start_time)
        if self.requested_port == 0:
            return
        from prometheus_client import start_http_server

        last_error: Exception | None = None
        last_port = min(self.requested_port + PORT_SPAN, 65536)  # bind() refuses 65536 on
        for port in range(self.requested_port, last_port):
            try:
                self._server, self._thread = start_http_server(port, registry=self.registry)
            except (OSError, OverflowError) as exc:
                last_error = exc
                continue
            self.port = port
            logger.info(
                "Prometheus metrics of %s/%s on port %d (http://127.0.0.1:%d/metrics)",
                self.sig,
                self.stage,
                port,
                port,
            )
            return
        logger.warning(
            "monitoring.port=%d: no free port in %d-%d (%s); this stage runs without live "
            "metrics, set monitoring.port to a free port",
            self.requested_port,
            self.requested_port,
            last_port - 1,
            last_error,
        )

    def set_epoch(self, epoch: int) -> None:
        """Record the epoch the stage works on."""
        self._epoch = int(epoch)
        if self.metrics is not None:
            self.metrics.set_epoch(epoch)

    def update(
        self,
        losses: dict[str, float],
        lrs: dict[str, float],
        samples: int,
        update_seconds: float,
        data_wait_seconds: float,
        progress: float,
        eta_seconds: float,
    ) -> None:
        """Record one finished update.

        Args:
            losses: the update's metrics, name -> value (plain floats, already on the
                CPU): losses, other metrics, and the ``lr/<opt>``/``grad_norm/<opt>`` keys.
            lrs: optimizer name -> current learning rate (beside ``lr/`` keys).
            samples: samples consumed by this update (over all micro-steps).
            update_seconds: wall time of the update, data wait excluded.
            data_wait_seconds: time spent waiting for batches during the update.
            progress: fraction of the stage done, 0 to 1.
            eta_seconds: estimated time left in the stage.
        """
        if self.metrics is not None:
            self.metrics.update(
                losses, lrs, samples, update_seconds, data_wait_seconds, progress, eta_seconds
            )

    def skipped_update(self) -> None:
        """Count one update skipped because a loss or gradient was not finite."""
        if self.metrics is not None:
            self.metrics.skipped_update()

    def checkpoint_written(self, seconds: float) -> None:
        """Record the wall time of one checkpoint write."""
        if self.metrics is not None:
            self.metrics.checkpoint_written(seconds)

    def finish(self, success: bool) -> None:
        """End the stage: push the summary (if configured) and stop serving.

        Args:
            success: whether the stage completed; a failed stage keeps its last progress.
        """
        if self.rank != 0 or self._finished:
            return
        self._finished = True
        now = time.time()
        started = self._start_time if self._start_time is not None else now
        self._record_timing(started, now - started, success)
        if not self.active:
            return
        if success:
            self.metrics.finished()
        if self.pushgateway:
            from audioflow.monitoring.pushgateway import push_stage_summary

            push_stage_summary(self.pushgateway, self.sig, self.stage, now - started, success, now)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def _record_timing(self, started: float, seconds: float, success: bool) -> None:
        """Append the stage run to ``<xp>/timings.jsonl`` (what ``audioflow report`` shows)."""
        folder = self.facts.folder
        if folder is None or not os.path.isdir(folder):
            return
        from audioflow.config import layout

        row = {"stage": self.stage, "epoch": self._epoch, "start": round(started, 3)}
        row.update(seconds=round(seconds, 3), success=bool(success))
        # one short line in append mode: concurrent stages of an XP never interleave it
        with open(os.path.join(folder, layout.TIMINGS_FILE), "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def __enter__(self) -> StageMonitor:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(success=exc_type is None)


def start_monitor(
    sig: str, stage: str, rank: int, epoch: int, port: int = 0, pushgateway: str | None = None
) -> StageMonitor:
    """A started monitor of one stage of epoch ``epoch`` (what a solver opens a stage with);
    the arguments are :class:`StageMonitor`'s."""
    monitor = StageMonitor(sig, stage, rank, port, pushgateway)
    monitor.start()
    monitor.set_epoch(epoch)
    return monitor
