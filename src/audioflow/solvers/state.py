"""The solver's state registry: everything a checkpoint holds goes through it.

As flashy's ``StateManager``: a solver registers attributes by name
(``register_stateful('model', 'optimizer')``); a name is resolved when the state is saved
or loaded, so an attribute wrapped in DDP or rebuilt later is still found (DDP wrappers are
looked through). An attribute with ``state_dict``/``load_state_dict`` saves through them;
any other value (the history, a list) is saved as it is. The base registers its own
bookkeeping the same way: ``loop`` (:class:`LoopState`), ``history``, ``best``
(:class:`BestState`), the optimizer ``protocol`` and ``ema``.

Also here: :func:`weights_from` reads the weights ``continue_from`` points at.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from audioflow import atomic
from audioflow.config import layout

from . import checkpoint


@dataclasses.dataclass
class LoopState:
    """Where training stands inside the epoch in progress (epochs come from the history).

    Attributes:
        update: updates done in the epoch in progress (0: none, or no epoch in progress).
        micro: micro-batches done in it (``accum_grad`` per update): the sampler position.
        skipped: updates of that epoch in which some optimizer skipped (non-finite).
        nonfinite: optimizer name -> consecutive updates it skipped (the NaN policy).
    """

    update: int = 0
    micro: int = 0
    skipped: int = 0
    nonfinite: dict[str, int] = dataclasses.field(default_factory=dict)

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.update, self.micro = int(state["update"]), int(state["micro"])
        self.skipped = int(state["skipped"])
        self.nonfinite = {str(k): int(v) for k, v in state["nonfinite"].items()}


@dataclasses.dataclass
class BestState:
    """The weights of the registered ``best`` attributes at the best valid metric.

    Attributes:
        state: name -> state dict (a copy), or None before the first valid.
        value: the metric's value (None when no metric picks it: the latest is the best).
        epoch: the epoch it was taken at.
    """

    state: dict | None = None
    value: float | None = None
    epoch: int | None = None

    def state_dict(self) -> dict:
        return {"state": self.state, "value": self.value, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.state, self.value, self.epoch = state["state"], state["value"], state["epoch"]

    def beaten_by(self, value: float | None, lower_is_better: bool) -> bool:
        """Whether a validated state of metric ``value`` (None: no metric) is the new best."""
        best = self.value
        if best is not None and not math.isfinite(best):
            best = None  # a non-finite best (saved before this check existed): no best yet
        if best is None or value is None:
            return True
        return value < best if lower_is_better else value > best

    def offer(
        self,
        metrics: dict,
        metric: str | None,
        lower_is_better: bool,
        epoch: int,
        snapshot: Callable[[], dict],
        logger: logging.Logger,
    ) -> bool:
        """Take a validated state as the best if its ``metric`` beats the best so far.

        Args:
            metrics: the valid stage's metrics.
            metric: the one that ranks states; None: the latest validated state is the best.
            lower_is_better: the metric's direction.
            epoch: the epoch validated.
            snapshot: returns a copy of the validated state (called only when it is taken).
            logger: where a non-finite value is reported.

        Returns:
            Whether the state was taken (the caller writes it with :meth:`save`).

        Raises:
            ConfigError: ``metric`` is not among ``metrics``.
        """
        if metric is None:
            value = None
        elif metric not in metrics:
            from audioflow.config.errors import ConfigError

            raise ConfigError(
                f"best.metric={metric!r} is not a valid metric (have: {', '.join(metrics)}); "
                "set best.metric or best_metric() to one of them"
            )
        else:
            value = float(metrics[metric])
        if value is not None and not math.isfinite(value):
            # every comparison with NaN is False: taken as best, it would lock the best state
            logger.warning(
                "epoch %d: valid %s=%s is not finite; it cannot become the best state",
                epoch,
                metric,
                value,
            )
            return False
        if not self.beaten_by(value, lower_is_better):
            return False
        self.state, self.value, self.epoch = snapshot(), value, epoch
        return True

    def save(self, folder: Path, sig: str, metric: str | None, valid: dict) -> None:
        """Write best.th (the state) and best.json (what a person reads), atomically."""
        payload = {"kind": "best", "sig": sig, "epoch": self.epoch, "metric": metric}
        payload.update({"value": self.value, "state": self.state})
        checkpoint.save(payload, Path(folder) / layout.BEST_CHECKPOINT)
        info = {"epoch": self.epoch, "metric": metric, "value": self.value, "valid": valid}
        atomic.write_json(info, Path(folder) / layout.BEST_FILE)

    def read(self, folder: Path, sig: str) -> bool:
        """Load ``folder``'s best.th into this state (a stage run's best so far).

        Returns:
            False when there is no best.th yet (the state is left as it is).

        Raises:
            CheckpointError: best.th is unreadable or of another XP.
        """
        path = Path(folder) / layout.BEST_CHECKPOINT
        if not path.exists():
            return False
        payload = checkpoint.load(path, sig=sig, kind="best")
        self.state, self.value, self.epoch = payload["state"], payload["value"], payload["epoch"]
        return True


def unwrap(obj):
    """The module inside a DDP wrapper (anything else is returned unchanged)."""
    return obj.module if isinstance(obj, torch.nn.parallel.DistributedDataParallel) else obj


class StateManager:
    """Registered attribute names of one owner (the solver), saved and loaded together.

    Args:
        owner: the object whose attributes the names refer to.
    """

    def __init__(self, owner) -> None:
        self.owner = owner
        self.stateful: list[str] = []
        self.best: list[str] = []
        self.ema: list[str] = []

    def register(self, *names: str) -> None:
        """Save and restore these attributes."""
        self.stateful.extend(n for n in names if n not in self.stateful)

    def get(self, name: str):
        """The attribute ``name``, DDP wrapper looked through."""
        return unwrap(getattr(self.owner, name))

    def modules(self, names) -> dict[str, torch.nn.Module]:
        """name -> module, for the names that are modules."""
        found = {n: self.get(n) for n in names}
        return {n: m for n, m in found.items() if isinstance(m, torch.nn.Module)}

    def state_dict(self) -> dict:
        """``{name: state}`` of every registered attribute."""
        out = {}
        for name in self.stateful:
            value = self.get(name)
            out[name] = value.state_dict() if hasattr(value, "state_dict") else value
        return out

    def load_state_dict(self, state: dict) -> None:
        """Load what :meth:`state_dict` returned.

        Raises:
            CheckpointError: a registered name has no state in ``state``.
        """
        for name in self.stateful:
            if name not in state:
                raise checkpoint.CheckpointError(f"checkpoint has no state for {name!r}")
            value = self.get(name)
            if hasattr(value, "load_state_dict"):
                value.load_state_dict(state[name])
            else:
                setattr(self.owner, name, copy.deepcopy(state[name]))

    def nonfinite_tensor(self) -> str | None:
        """``name.key`` of the first registered module tensor holding NaN/inf, or None."""
        for name, module in self.modules(self.stateful).items():
            for key, value in module.state_dict().items():
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    return f"{name}.{key}"
        return None

    def snapshot(self, names) -> dict:
        """A copy of these attributes' states (the live tensors keep training)."""
        return {n: copy.deepcopy(self.get(n).state_dict()) for n in names}

    @contextmanager
    def swapped(self, states: dict[str, dict]) -> Iterator[None]:
        """Run a block with ``states`` loaded into their attributes, then put them back."""
        backup = self.snapshot(states)
        for name, state in states.items():
            self.get(name).load_state_dict(state)
        try:
            yield
        finally:
            for name, state in backup.items():
                self.get(name).load_state_dict(state)


def continue_from_path(source: str, xp_root: Callable[[], str]) -> Path:
    """The file ``continue_from`` names: an XP signature, a checkpoint file or a folder.

    Raises:
        ConfigError: nothing usable there.
    """
    from audioflow.config.errors import ConfigError

    if layout.is_signature(source):
        path = layout.xp_folder(xp_root(), source)
        if not path.is_dir():
            raise ConfigError(f"continue_from={source}: no XP folder {path}")
    else:
        from audioflow.config.paths import resolve_path

        path = resolve_path(str(source))
    if path.is_dir():
        names = (layout.BEST_CHECKPOINT, layout.LATEST_CHECKPOINT, "model.th")
        found = [path / n for n in names if (path / n).exists()]
        if not found:
            raise ConfigError(
                f"continue_from={source}: {path} holds no best.th, checkpoint.th or model.th"
            )
        path = found[0]
    elif not path.is_file():
        raise ConfigError(f"continue_from={source}: {path} does not exist")
    return path


def weights_from(path: Path, best_names: list[str]) -> dict[str, dict]:
    """The best-state weights in a best.th, checkpoint.th or exported model.th.

    Raises:
        CheckpointError: the file holds no state for ``best_names``.
    """
    try:
        payload = checkpoint.load(path)
    except checkpoint.CheckpointError:
        payload = None
    if payload is not None:  # an audioflow best.th or checkpoint.th
        if payload["kind"] == "best":
            return payload["state"]
        best = payload["state"]["best"]["state"]
        return best or {n: payload["state"][n] for n in best_names}
    # an exported package: model.th is a plain state dict (weights only)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(raw, dict) and raw and all(torch.is_tensor(v) for v in raw.values()):
        return {best_names[0] if best_names else "model": raw}
    if isinstance(raw, dict) and set(best_names) <= set(raw):
        return {n: raw[n] for n in best_names}
    raise checkpoint.CheckpointError(f"{path}: holds no state for {best_names}")
