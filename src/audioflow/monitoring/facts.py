"""What the run's loggers (TensorBoard, Prometheus) know of the XP beyond the metrics.

The loop hands the loggers metrics and step counts; turning an epoch into an update step,
items into audio seconds, or telling a loss from a quality metric needs the XP's config.
:func:`run_facts` is the one place that reads it (from the current XP, as Dora's loggers
do), so the loggers themselves take plain values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from audioflow.config import layout
from audioflow.monitoring.names import is_loss_name


@dataclass(frozen=True)
class RunFacts:
    """The XP facts the loggers need; every field is optional.

    Args:
        sig: the XP signature.
        folder: the XP folder.
        epochs: epochs the XP trains in total.
        updates_per_epoch: updates in one epoch (turns an epoch into its last update step).
        items_per_update: training items in one update (global batch times accumulation).
        item_seconds: audio seconds in one training item (the segment duration), or None.
        loss_names: the metric names that are losses: the terms of the ``losses`` config
            group and every OptimScheduler's ``optim_loss`` (see :meth:`is_loss` for the
            names that are losses without being listed).
        samples_dir: folder name under the XP where generate writes ``epoch_<E>/``.
        hparams: the XP's delta (key -> value) and its signature.
        overrides: the XP's overrides as given.
    """

    sig: str | None = None
    folder: str | None = None
    epochs: int | None = None
    updates_per_epoch: int | None = None
    items_per_update: int | None = None
    item_seconds: float | None = None
    loss_names: frozenset[str] = frozenset()
    samples_dir: str = layout.SAMPLES_DIR
    hparams: dict = field(default_factory=dict)
    overrides: tuple[str, ...] = ()

    def is_loss(self, name: str) -> bool:
        """Whether the metric ``name`` is a loss (else a quality or diagnostic metric).

        A loss is a term of the config's ``losses`` group, an OptimScheduler's
        ``optim_loss``, or a name that says so (:func:`~audioflow.monitoring.names.is_loss_name`).
        """
        return name in self.loss_names or is_loss_name(name)


def run_facts(xp=None) -> RunFacts:
    """The :class:`RunFacts` of ``xp`` (default: the current XP; none set: empty facts).

    Every key is optional, so a user solver whose config lacks one only loses what needs it.
    """
    from omegaconf import OmegaConf

    if xp is None:
        from audioflow.config.xp import current_xp

        try:
            xp = current_xp()
        except RuntimeError:
            return RunFacts()
    cfg = xp.cfg

    def select(key: str):
        return OmegaConf.select(cfg, key, default=None)

    def number(key: str):
        value = select(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    updates, epochs = number("optim.updates_per_epoch"), number("optim.epochs")
    batch, accum = number("dataset.batch_size"), number("optim.accum_grad") or 1
    losses = set(select("losses") or {})
    for scheduler in (select("optim_sches") or {}).values():
        name = OmegaConf.select(scheduler, "conf.optim_loss", default=None)
        if name:
            losses.add(str(name))
    hparams = {"signature": xp.sig}
    hparams.update({str(k): _hparam_value(v) for k, v in xp.delta})
    return RunFacts(
        sig=xp.sig,
        folder=str(xp.folder),
        epochs=int(epochs) if epochs else None,
        updates_per_epoch=int(updates) if updates else None,
        items_per_update=int(batch * accum) if batch else None,
        item_seconds=number("dataset.segment_duration"),
        loss_names=frozenset(str(n) for n in losses),
        samples_dir=str(select("generate.path") or layout.SAMPLES_DIR),
        hparams=hparams,
        overrides=tuple(str(o) for o in xp.overrides),
    )


def _hparam_value(value):
    # TensorBoard's HPARAMS tab takes numbers, strings and booleans only.
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)
