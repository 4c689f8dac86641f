"""Solver state: registered attributes, checkpoint payloads, resume, best state, EMA swaps.

State is registered by attribute name (``register_stateful('model', 'optimizer')``), as
in flashy and AudioCraft; a name is resolved at save/load time, so an attribute wrapped
in DDP or rebuilt later is still found (DDP wrappers are looked through).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from audioflow import atomic

from . import checkpoint, distrib, rng


class StateMixin:
    """Registration and persistence half of :class:`~audioflow.solvers.base.StandardSolver`."""

    def _init_state(self) -> None:
        self._stateful: list[str] = []
        self._best_names: list[str] = []
        self._ema_names: list[str] = []
        self.best_state: dict | None = None
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict] = []

    # -- registration (called from build_model) ---------------------------------------
    def register_stateful(self, *names: str) -> None:
        """Save and restore these attributes (anything with state_dict/load_state_dict)."""
        self._stateful.extend(n for n in names if n not in self._stateful)

    def register_best(self, *names: str) -> None:
        """Keep the state of these attributes at the best valid metric (used by evaluate)."""
        self._best_names.extend(n for n in names if n not in self._best_names)

    def register_ema(self, *names: str) -> None:
        """Average these modules' weights (when ``optim.ema.use``); valid runs on the average."""
        self._ema_names.extend(n for n in names if n not in self._ema_names)

    def _get(self, name: str):
        return distrib.unwrap(getattr(self, name))

    def _modules(self, names) -> dict[str, nn.Module]:
        return {n: self._get(n) for n in names if isinstance(self._get(n), nn.Module)}

    # -- whole state ----------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{name: state_dict}`` of every registered stateful attribute."""
        return {name: self._get(name).state_dict() for name in self._stateful}

    def load_state_dict(self, state: dict) -> None:
        """Load what :meth:`state_dict` returned (missing names are an error)."""
        for name in self._stateful:
            if name not in state:
                raise checkpoint.CheckpointError(f"checkpoint has no state for {name!r}")
            self._get(name).load_state_dict(state[name])

    def _best_snapshot(self) -> dict:
        # deepcopy: the live tensors keep training, the snapshot must not move with them
        return {n: copy.deepcopy(self._get(n).state_dict()) for n in self._best_names}

    def _payload(self, kind: str = "checkpoint", per_rank: list | None = None) -> dict:
        payload = {
            "kind": kind,
            "sig": self.xp.sig,
            "epoch": self.epoch,
            "updates_done": self._updates_done,
            "micro_done": self._micro_done,
            "epoch_done": self._epoch_done,
            "state": self.state_dict(),
            "best": {"state": self.best_state, "value": self.best_value, "epoch": self.best_epoch},
            "history": self.history,
            "train_metrics": self._train_avg.state_dict(),
            "nonfinite": self._nonfinite,
            "rng": rng.get_state(),
        }
        if per_rank is not None and len(per_rank) > 1:
            # Each rank's own running train means and RNG streams (ranks see other batches,
            # and may draw other amounts of random numbers): a resumed rank continues its own.
            payload["per_rank"] = per_rank
        return payload

    def _rank_state(self) -> dict:
        return {"train_metrics": self._train_avg.state_dict(), "rng": rng.get_state()}

    def _load_payload(self, payload: dict, restore_rng: bool = True) -> None:
        self.load_state_dict(payload["state"])
        self.epoch = int(payload["epoch"])
        self._updates_done = int(payload["updates_done"])
        self._micro_done = int(payload["micro_done"])
        self._epoch_done = bool(payload["epoch_done"])
        best = payload["best"]
        self.best_state, self.best_value, self.best_epoch = (
            best["state"],
            best["value"],
            best["epoch"],
        )
        self.history = list(payload["history"])
        mine = payload
        per_rank = payload.get("per_rank")
        if per_rank and len(per_rank) == self.world_size:
            mine = per_rank[self.rank]  # same world size: this rank's own state
        self._train_avg.load_state_dict(mine["train_metrics"], self.device)
        self._nonfinite = int(payload["nonfinite"])
        if restore_rng:
            rng.set_state(mine["rng"])

    # -- saving ------------------------------------------------------------------------
    def save_checkpoint(self, epoch_file: bool = False) -> None:
        """Write ``checkpoint.th`` (and ``checkpoint_<epoch>.th``) on rank 0, atomically."""
        per_rank = distrib.all_gather_objects(self._rank_state()) if self.world_size > 1 else None
        if self.is_rank_zero:
            t0 = self._clock()
            payload = self._payload(per_rank=per_rank)
            if epoch_file:
                checkpoint.save(payload, checkpoint.epoch_path(self.folder, self.epoch))
            checkpoint.save(payload, self.folder / checkpoint.LATEST)
            seconds = self._clock() - t0
            self.logger.debug("checkpoint written in %.3fs", seconds)
            if self._monitor is not None:
                self._monitor.checkpoint_written(seconds)
        distrib.barrier()

    def _save_best(self, metrics: dict) -> None:
        if not self.is_rank_zero:
            return
        payload = {"kind": "best", "sig": self.xp.sig, "epoch": self.best_epoch}
        payload.update({"metric": self._best_metric_name(), "value": self.best_value})
        payload["state"] = self.best_state
        checkpoint.save(payload, self.folder / checkpoint.BEST)
        info = {"epoch": self.best_epoch, "metric": self._best_metric_name()}
        info.update({"value": self.best_value, "valid": metrics})
        atomic.write_json(info, self.folder / "best.json")

    # -- best state ----------------------------------------------------------------------
    def _best_metric_name(self) -> str | None:
        configured = self.cfg.best.metric if "best" in self.cfg else None
        return configured or self.best_metric()

    def _update_best(self, metrics: dict) -> bool:
        """Keep the current weights as best if ``metrics`` beat the best so far."""
        name = self._best_metric_name()
        if name is None:
            value = None  # no metric: the latest validated state is the best one
        elif name not in metrics:
            from audioflow.config.errors import ConfigError

            raise ConfigError(
                f"best.metric={name!r} is not a valid metric (have: {', '.join(metrics)}); "
                "set best.metric or best_metric() to one of them"
            )
        else:
            value = float(metrics[name])
        if value is not None and not math.isfinite(value):
            # every comparison with NaN is False: taken as best, it would lock the best state
            self.logger.warning(
                "epoch %d: valid %s=%s is not finite; it cannot become the best state",
                self.epoch,
                name,
                value,
            )
            return False
        best = self.best_value
        if best is not None and not math.isfinite(best):
            best = None  # a non-finite best (saved before this check existed): no best yet
        lower = bool(self.cfg.best.lower_is_better) if "best" in self.cfg else True
        better = best is None or value is None or (value < best if lower else value > best)
        if better:
            self.best_state, self.best_value, self.best_epoch = (
                self._best_snapshot(),
                value,
                self.epoch,
            )
            self._save_best(metrics)
        return better

    def _load_best_file(self) -> bool:
        """Read best.th into ``best_state`` (stage runs); False when there is none yet."""
        path = self.folder / checkpoint.BEST
        if not path.exists():
            return False
        payload = checkpoint.load(path, sig=self.xp.sig, kind="best")
        self.best_state = payload["state"]
        self.best_value, self.best_epoch = payload["value"], payload["epoch"]
        return True

    @contextmanager
    def _swapped(self, states: dict[str, dict]) -> Iterator[None]:
        backup = {n: copy.deepcopy(self._get(n).state_dict()) for n in states}
        for name, state in states.items():
            self._get(name).load_state_dict(state)
        try:
            yield
        finally:
            for name, state in backup.items():
                self._get(name).load_state_dict(state)

    @contextmanager
    def swap_best_state(self) -> Iterator[None]:
        """Run a block with the best state loaded (no-op before the first valid)."""
        with self._swapped(self.best_state or {}):
            yield

    @contextmanager
    def swap_ema_state(self) -> Iterator[None]:
        """Run a block with the EMA weights loaded (no-op when EMA is off)."""
        states = {} if self.ema is None else self.ema.state_dict()["state"]
        with self._swapped(states):
            yield

    # -- continue_from ----------------------------------------------------------------------
    def _continue_from(self, source: str) -> None:
        """Load another XP's best state (SIG, checkpoint file, package folder) into this one."""
        from audioflow.config.errors import ConfigError

        if re.fullmatch(r"[0-9a-f]{8}", str(source)):
            from audioflow.config import xp_root

            path = Path(xp_root()) / "xps" / source
            if not path.is_dir():
                raise ConfigError(f"continue_from={source}: no XP folder {path}")
        else:
            from audioflow.config.paths import resolve_path

            path = resolve_path(str(source))
        if path.is_dir():
            found = [path / n for n in (checkpoint.BEST, checkpoint.LATEST, "model.th")]
            found = [p for p in found if p.exists()]
            if not found:
                raise ConfigError(
                    f"continue_from={source}: {path} holds no best.th, checkpoint.th or model.th"
                )
            path = found[0]
        elif not path.is_file():
            raise ConfigError(f"continue_from={source}: {path} does not exist")
        states = self._states_from_file(path)
        for name, state in states.items():
            self._get(name).load_state_dict(state)
        if self.ema is not None:
            self.ema = type(self.ema)(self._modules(self._ema_names), self.ema.decay)
        self.logger.info("continue_from=%s: loaded %s from %s", source, ", ".join(states), path)

    def _states_from_file(self, path: Path) -> dict[str, dict]:
        try:
            payload = checkpoint.load(path)
        except checkpoint.CheckpointError:
            payload = None
        if payload is not None:  # an audioflow best.th or checkpoint.th
            if payload["kind"] == "best":
                return payload["state"]
            best = payload["best"]["state"]
            return best or {n: payload["state"][n] for n in self._best_names}
        # an exported package: model.th is a plain state dict (weights only)
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(raw, dict) and raw and all(torch.is_tensor(v) for v in raw.values()):
            target = self._best_names[0] if self._best_names else "model"
            return {target: raw}
        if isinstance(raw, dict) and set(self._best_names) <= set(raw):
            return {n: raw[n] for n in self._best_names}
        raise checkpoint.CheckpointError(f"{path}: holds no state for {self._best_names}")
