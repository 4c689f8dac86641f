"""The Prometheus metrics of one running stage, on a dedicated registry.

Every metric carries the labels ``signature``, ``stage`` and ``rank`` (plus ``loss`` for
losses, ``metric`` for the other per-update metrics and ``optimizer`` for learning rates
and gradient norms), so the number of series stays bounded by the number of XPs and
stages that run. The per-update metrics of the solver are split by name: ``lr/<opt>`` and
``grad_norm/<opt>`` (the solver core's keys) go to the optimizer gauges, losses (see
:meth:`RunFacts.is_loss`) to ``audioflow_loss``, the rest (SI-SNR, codebook usage) to
``audioflow_metric``, so that one panel never mixes their scales. The standard
``process_*`` metrics come from prometheus_client's process collector. Names follow
Prometheus conventions: ``audioflow_`` prefix, base units (seconds, bytes, ratio),
counters end in ``_total``.

A dedicated :class:`~prometheus_client.CollectorRegistry` is used rather than the global
one so that several monitors in one process (tests, notebooks) never clash.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)

from audioflow.monitoring.facts import RunFacts
from audioflow.monitoring.names import is_optim_key, split_optim_key
from audioflow.monitoring.resources import ResourceCollector

LABELS = ("signature", "stage", "rank")

# Updates last from a few milliseconds (tiny CPU models) to about a minute (large GPU
# models with gradient accumulation).
UPDATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Checkpoints range from kilobytes on local disk to gigabytes on network storage.
CHECKPOINT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class StageMetrics:
    """All the live metrics of one stage, bound to their label values.

    Args:
        sig: XP signature.
        stage: stage name (train, valid, evaluate, generate).
        rank: distributed rank of the process that serves the metrics.
        registry: registry to register on; a new one when None.
        facts: what the XP is (which metrics are losses, audio seconds per item, total
            epochs); None: only the names ending in ``loss`` count as losses.
    """

    def __init__(
        self,
        sig: str,
        stage: str,
        rank: int,
        registry: CollectorRegistry | None = None,
        facts: RunFacts | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.labels = {"signature": sig, "stage": stage, "rank": str(rank)}
        self.facts = facts if facts is not None else RunFacts()
        reg = self.registry

        def bound(metric_type, name: str, documentation: str, **kwargs):
            # Bind the label values once: every series is then exported (as zero) from the
            # first scrape, and an update skips the per-call label lookup.
            metric = metric_type(name, documentation, LABELS, registry=reg, **kwargs)
            return metric.labels(**self.labels)

        def named(name: str, documentation: str, label: str) -> _Named:
            gauge = Gauge(name, documentation, (*LABELS, label), registry=reg)
            return _Named(gauge, label, self.labels)

        self._updates = bound(Counter, "audioflow_updates", "Optimizer updates done.")
        self._items = bound(
            Counter, "audioflow_items", "Training items (audio segments, utterances) processed."
        )
        self._audio_seconds = bound(
            Counter, "audioflow_audio_seconds", "Seconds of training audio processed."
        )
        self._skipped = bound(
            Counter,
            "audioflow_skipped_updates",
            "Updates skipped because a loss or gradient was not finite.",
        )
        # One series per name, bound on first use in update().
        self._loss = named("audioflow_loss", "Last value of each training loss.", "loss")
        self._metric = named(
            "audioflow_metric",
            "Last value of each per-update metric that is not a loss (quality, diagnostics).",
            "metric",
        )
        self._lr = named(
            "audioflow_learning_rate",
            "Current learning rate of each optimizer (OptimScheduler name, or main; "
            "<name>/<group> per parameter group).",
            "optimizer",
        )
        self._grad_norm = named(
            "audioflow_grad_norm",
            "L2 norm of each optimizer's gradients before clipping, at the last update.",
            "optimizer",
        )
        self._update_seconds = bound(
            Histogram,
            "audioflow_update_duration_seconds",
            "Wall time of one update (forward, backward and optimizer step).",
            buckets=UPDATE_BUCKETS,
        )
        self._data_wait = bound(
            Counter,
            "audioflow_data_wait_seconds",
            "Time spent waiting for the next batch from the data loader.",
        )
        self._epoch = bound(Gauge, "audioflow_epoch", "Current epoch (1-based).")
        self._epochs = bound(Gauge, "audioflow_epochs", "Epochs the XP trains in total.")
        if self.facts.epochs:
            self._epochs.set(self.facts.epochs)
        self._progress = bound(
            Gauge, "audioflow_progress_ratio", "Fraction of the stage done, 0 to 1."
        )
        self._eta = bound(Gauge, "audioflow_eta_seconds", "Estimated time left in the stage.")
        self._checkpoint_seconds = bound(
            Histogram,
            "audioflow_checkpoint_write_duration_seconds",
            "Wall time to write one checkpoint.",
            buckets=CHECKPOINT_BUCKETS,
        )
        self._start_time = bound(
            Gauge, "audioflow_stage_start_time_seconds", "Unix time the stage started."
        )
        version, commit = build_version()
        Info(
            "audioflow_build",
            "audioflow version and git commit of the running stage.",
            LABELS,
            registry=reg,
        ).labels(**self.labels).info({"version": version, "git_commit": commit})
        # The standard process_* metrics (CPU seconds, resident memory, open files).
        ProcessCollector(registry=reg)
        self._resources = ResourceCollector(self.labels)
        reg.register(self._resources)

    def started(self, timestamp: float) -> None:
        """Record the stage start time (Unix seconds)."""
        self._start_time.set(timestamp)

    def set_epoch(self, epoch: int) -> None:
        """Record the current epoch."""
        self._epoch.set(epoch)

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
        """Record one finished update; see :meth:`StageMonitor.update`."""
        self._updates.inc()
        items = max(0, int(samples))
        self._items.inc(items)
        if self.facts.item_seconds:
            self._audio_seconds.inc(items * float(self.facts.item_seconds))
        for name, value in losses.items():
            if is_optim_key(name):
                kind, optimizer = split_optim_key(name)
                (self._lr if kind == "lr" else self._grad_norm).set(optimizer, value)
            elif self.facts.is_loss(name):
                self._loss.set(name, value)
            else:
                self._metric.set(name, value)
        for name, value in lrs.items():
            self._lr.set(name, value)
        self._update_seconds.observe(max(0.0, float(update_seconds)))
        self._data_wait.inc(max(0.0, float(data_wait_seconds)))
        self._progress.set(min(1.0, max(0.0, float(progress))))
        self._eta.set(max(0.0, float(eta_seconds)))

    def skipped_update(self) -> None:
        """Count one update skipped for a non-finite loss or gradient."""
        self._skipped.inc()

    def checkpoint_written(self, seconds: float) -> None:
        """Record the wall time of one checkpoint write."""
        self._checkpoint_seconds.observe(max(0.0, float(seconds)))

    def exported_names(self) -> set[str]:
        """Every sample name these metrics can export, GPU memory included even off GPU."""
        return sample_names(self.registry.collect()) | sample_names(self._resources.describe())

    def finished(self) -> None:
        """Mark the stage complete: progress 1, nothing left."""
        self._progress.set(1.0)
        self._eta.set(0.0)


class _Named:
    """A gauge with one extra label (a loss, metric or optimizer name), children cached."""

    def __init__(self, gauge: Gauge, label: str, labels: dict[str, str]) -> None:
        self.gauge, self.label, self.labels = gauge, label, labels
        self.children: dict[str, Gauge] = {}

    def set(self, name: str, value: float) -> None:
        child = self.children.get(name)
        if child is None:
            child = self.children[name] = self.gauge.labels(**self.labels, **{self.label: name})
        child.set(float(value))


def build_version() -> tuple[str, str]:
    """audioflow's version and git commit (``unknown`` outside a git checkout), read once.

    Torch is not imported (a scrape never needs it), so torch's version is left out.
    """
    global _BUILD
    if _BUILD is None:
        import subprocess
        from pathlib import Path

        import audioflow

        root = Path(audioflow.__file__).resolve().parents[2]
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
        _BUILD = (audioflow.__version__, commit or "unknown")
    return _BUILD


_BUILD: tuple[str, str] | None = None


def sample_names(families) -> set[str]:
    """Every sample name a scrape of these metric families can contain.

    Histograms export ``_bucket``, ``_sum`` and ``_count``, counters ``_total`` (and
    ``_created``): all are listed, so the set can be matched against PromQL queries.

    Args:
        families: iterable of :class:`~prometheus_client.Metric` (from ``collect()`` or
            ``describe()``).

    Returns:
        The set of sample names.
    """
    names: set[str] = set()
    for family in families:
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.update(family.name + s for s in ("_total", "_created"))
        elif family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count", "_created"))
    return names
