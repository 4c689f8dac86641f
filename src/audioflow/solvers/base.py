"""StandardSolver: the training loop every audioflow task solver builds on.

A task solver defines ``build_model``, ``build_dataloaders``, ``run_step``, ``evaluate``
and ``generate`` (the API of AudioCraft's TRAINING.md); the base owns epochs, stages,
checkpoints, resume, best state, EMA, distributed training and logging.
An epoch is exactly ``optim.updates_per_epoch`` updates. See docs/solvers.md.
"""

from __future__ import annotations

import time
import types
from abc import ABC, abstractmethod
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.nn.parallel import DistributedDataParallel as DDP

from audioflow.config.xp import current_xp

from . import checkpoint, distrib, logs, rng
from .loop import LoopMixin
from .state import StateMixin


@dataclass(frozen=True)
class LoopSettings:
    """The config values the train loop reads at every update, read once (config lookups
    cost tens of microseconds each, a visible share of a small model's update)."""

    epochs: int
    updates_per_epoch: int
    accum_grad: int
    seed: int
    batch_size: int
    log_updates: int
    save_every_updates: int
    ema_every: int
    max_nonfinite: int


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates had a non-finite loss (``optim.max_nonfinite``)."""


class StandardSolver(StateMixin, LoopMixin, ABC):
    """Base solver: subclass it, define the abstract methods, register your state.

    Args:
        cfg: the XP's composed config (omegaconf DictConfig); the XP folder comes from
            :func:`audioflow.config.xp.current_xp`.

    Attributes:
        cfg, xp, folder, device, rank, world_size, logger: the run's context.
        epoch: the epoch being run (from 1). current_stage: the running stage's name.
        dataloaders: stage name -> loader, set by ``build_dataloaders``.
    """

    # AudioCraft-style solvers only: check every gradient before each optimizer step and
    # skip the step when one is not finite. It reads all gradients once per update (0.1-0.3
    # ms per million parameters on one CPU core, microseconds on a GPU). A solver may set
    # it False to save that time; the NaN policy is then off for it.
    check_finite_grads: bool = True
    # DDP's find_unused_parameters for the registered modules it wraps: set True when a
    # step may leave some of a module's parameters out of the loss (e.g. a discriminator
    # trained every other step); it costs an extra graph traversal per backward.
    ddp_find_unused_parameters: bool = False

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.xp = current_xp()
        self.folder = Path(self.xp.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.device = distrib.init(str(cfg.device))
        self.rank, self.world_size = distrib.rank(), distrib.world_size()
        self.logger = logs.setup_logger(
            self.folder, self.rank, self._select("logging.level", "INFO")
        )
        torch.set_num_threads(int(self._select("num_threads", 1)))
        self._init_state()
        self.settings = LoopSettings(
            epochs=int(cfg.optim.epochs),
            updates_per_epoch=int(cfg.optim.updates_per_epoch),
            accum_grad=int(cfg.optim.accum_grad),
            seed=int(cfg.seed),
            batch_size=int(self._select("dataset.batch_size", 0)),
            log_updates=int(self._select("logging.log_updates", 10)),
            save_every_updates=int(self._select("checkpoint.save_every_updates", 0)),
            ema_every=max(1, int(self._select("optim.ema.updates", 1))),
            max_nonfinite=int(self._select("optim.max_nonfinite", 10)),
        )
        self.epoch = 0  # no epoch started yet
        self.current_stage: str | None = None
        self.dataloaders: dict = {}
        self.ema = None
        self.optim_sches = None
        self._updates_done = 0  # updates done in self.epoch
        self._micro_done = 0  # micro-batches done in self.epoch (accum_grad per update)
        self._epoch_done = True
        self._nonfinite = 0
        self._skipped_step = False
        self._monitor = None
        self._clock = time.perf_counter
        self._train_avg = logs.Averager()
        self.tensorboard = logs.TensorBoard(
            self.folder, self.is_rank_zero and bool(self._select("logging.log_tensorboard", False))
        )
        rng.seed_all(int(cfg.seed))
        self.build_model()
        self._build_optim_sches()
        for name in self._stateful:  # DDP: gradients averaged over ranks in backward
            module = getattr(self, name)
            if isinstance(module, torch.nn.Module):
                wrapped = distrib.wrap(module, self.device, self.ddp_find_unused_parameters)
                setattr(self, name, wrapped)
        self._build_ema()
        self.build_dataloaders()
        self.logger.info(
            "solver %s, XP %s, %d process(es), device %s",
            type(self).__name__,
            self.xp.sig,
            self.world_size,
            self.device,
        )

    # -- to define in a task solver -----------------------------------------------------
    @abstractmethod
    def build_model(self) -> None:
        """Create the model(s) and optimizer(s); register them (``register_stateful`` ...)."""

    @abstractmethod
    def build_dataloaders(self) -> None:
        """Fill ``self.dataloaders`` with a loader per stage (train, valid, evaluate, ...)."""

    @abstractmethod
    def run_step(self, idx: int, batch, metrics: dict) -> dict:
        """One train or valid step on a batch; returns the step's metrics (losses).

        AudioCraft style: on train, compute the loss, ``backward()`` and step
        ``self.optimizer`` yourself. OptimScheduler style (``optim_sches`` set): return the
        named losses; the base runs backward and the optimizer steps.
        """

    @abstractmethod
    def evaluate(self) -> dict:
        """Evaluate stage (runs with the best state loaded); returns metrics."""

    @abstractmethod
    def generate(self) -> dict:
        """Generate stage (best state loaded); write samples under ``self.samples_folder``."""

    def best_metric(self) -> str | None:
        """Valid metric that picks the best state (``best.metric`` overrides it); None = latest."""
        return None

    def train(self) -> dict:
        """Train stage: ``optim.updates_per_epoch`` updates."""
        return self.common_train_valid("train")

    def valid(self) -> dict:
        """Valid stage: one pass over the valid loader, EMA weights when EMA is on."""
        return self.common_train_valid("valid")

    # -- context ---------------------------------------------------------------------------
    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0

    @property
    def is_training(self) -> bool:
        return self.current_stage == "train"

    @property
    def local_batch_size(self) -> int:
        """This process's share of ``dataset.batch_size`` (the global batch of an update).

        Raises:
            ConfigError: the global batch does not divide evenly over the processes.
        """
        if self.settings.batch_size % self.world_size:
            from audioflow.config.errors import ConfigError

            raise ConfigError(
                f"dataset.batch_size={self.settings.batch_size} does not divide over "
                f"{self.world_size} processes; use a multiple of {self.world_size}"
            )
        return self.settings.batch_size // self.world_size

    @property
    def samples_folder(self) -> Path:
        """``<xp>/<generate.path>/epoch_<E>/`` where the generate stage writes."""
        return self.folder / str(self._select("generate.path", "samples")) / f"epoch_{self.epoch}"

    def _select(self, key: str, default=None):
        value = OmegaConf.select(self.cfg, key, default=default)
        return default if value is None else value

    # -- construction helpers --------------------------------------------------------------
    def _build_optim_sches(self) -> None:
        optim = self.cfg.optim
        if self._select("optim_sches") is None:
            from audioflow.config.errors import ConfigError

            if int(optim.accum_grad) != 1:
                raise ConfigError(
                    f"optim.accum_grad={optim.accum_grad} needs optim_sches (the base then "
                    "accumulates); with a single optimizer set optim.accum_grad=1"
                )
            precision = str(self._select("optim.precision", "fp32"))
            if precision != "fp32":
                raise ConfigError(
                    f"optim.precision={precision} needs optim_sches (they run autocast and "
                    "the GradScaler); with a single optimizer set optim.precision=fp32"
                )
            from audioflow.optim.ft_factor import scale_lrs

            # ft_factor scales the LR, as OptimSchedulers do, including what a torch
            # LRScheduler built in build_model recomputes it from (registered or not)
            registered = [getattr(self, name) for name in self._stateful]
            candidates = [*registered, *vars(self).values()]
            scale_lrs(registered, candidates, self._select("optim.ft_factor", 1.0))
            return
        from audioflow.optim import build_optim_sches

        model = getattr(self, "model", None)
        if model is None:
            raise AttributeError("optim_sches needs build_model() to set self.model")
        self.optim_sches = build_optim_sches(
            self.cfg.optim_sches,
            model,
            distributed=self.world_size > 1,
            accum_grad=int(optim.accum_grad),
            precision=str(optim.precision),
            ft_factor=float(optim.ft_factor),
        )
        self.register_stateful("optim_sches")

    def _build_ema(self) -> None:
        if not self._ema_names or not bool(self._select("optim.ema.use", False)):
            return
        from audioflow.optim.ema import ModuleDictEMA

        decay = float(self.cfg.optim.ema.decay)
        self.ema = ModuleDictEMA(self._modules(self._ema_names), decay)
        self.register_stateful("ema")

    def _guard_optimizers(self) -> None:
        """Make each registered optimizer skip its step when a gradient is not finite.

        AudioCraft-style solvers step their optimizer inside ``run_step``; this guard is
        what lets the base apply the NaN policy without changing their code.
        """
        for name in self._stateful if self.check_finite_grads else []:
            opt = getattr(self, name)
            if not isinstance(opt, torch.optim.Optimizer) or getattr(opt, "_af_guard", False):
                continue
            original = opt.step
            params = [p for g in opt.param_groups for p in g["params"]]
            one_device = len({p.device for p in params}) == 1
            # torch LRSchedulers mark the step they wrap to check the call order; a
            # scheduler built in build_model already wrapped `original`
            tracked = hasattr(original, "_wrapped_by_lr_sched")

            def guarded(_opt, *args, _step=original, _params=params, _one=one_device, **kw):
                grads = [p.grad for p in _params if p.grad is not None]
                if grads and not _all_finite(grads, _one):
                    _opt.zero_grad(set_to_none=True)
                    self._skipped_step = True
                    # what a torch LRScheduler's wrapper records: step() was called, in
                    # order (else its next step warns it came before optimizer.step())
                    _opt._opt_called = True
                    return None
                return _step(*args, **kw)

            if tracked:  # else torch would warn that optimizer.step() was overridden
                guarded._wrapped_by_lr_sched = True
            # a bound method, as torch expects when a scheduler built later wraps it
            opt.step = types.MethodType(guarded, opt)
            opt._af_guard = True

    # -- one train micro-step -------------------------------------------------------------------
    def _train_step(self, idx: int, batch) -> tuple[dict, bool, bool]:
        """Run one micro-batch; returns (metrics, window_ended, skipped_nonfinite)."""
        if self.optim_sches is None:
            self._skipped_step = False
            metrics = self.run_step(idx, batch, {})
            return metrics, True, self._skipped_step
        group = self.optim_sches
        step_num = (self.epoch - 1) * self._micro_per_epoch() + self._micro_done + 1
        model = getattr(self, "model", None)
        last = group.is_last_micro_step(step_num)
        with ExitStack() as stack:
            stack.enter_context(group.accumulate(model, step_num))
            for name in self._stateful:  # other DDP modules skip the all-reduce like the model
                other = getattr(self, name)
                if other is not model and isinstance(other, DDP) and not last:
                    stack.enter_context(other.no_sync())
            with group.autocast():
                metrics = self.run_step(idx, batch, {})
            losses = {k: v for k, v in metrics.items() if torch.is_tensor(v)}
            info = group.step(losses, step_num)
        # a window's end is an update of the epoch even when it was skipped (non-finite)
        return metrics, last, bool(info["skipped_nonfinite"])

    def _after_update(self, metrics: dict, skipped: bool) -> None:
        """EMA and NaN policy after an update."""
        if skipped:
            self._nonfinite += 1
            if self._monitor is not None:
                self._monitor.skipped_update()
            limit = self.settings.max_nonfinite
            bad = [k for k, v in metrics.items() if _is_nonfinite(v)]
            what = f"loss {', '.join(bad)}" if bad else "gradients"
            self.logger.warning(
                "epoch %d update %d: non-finite %s, update skipped (%d in a row)",
                self.epoch,
                self._updates_done,
                what,
                self._nonfinite,
            )
            if self._nonfinite > limit:
                raise NonFiniteLossError(
                    f"{self._nonfinite} consecutive updates with non-finite {what} (epoch "
                    f"{self.epoch}, update {self._updates_done}) exceeds optim.max_nonfinite="
                    f"{limit}; lower optim.lr, check the data, or use precision=fp32"
                )
            return
        self._nonfinite = 0
        # the global update index: a per-epoch count would restart the cadence every epoch
        done = (self.epoch - 1) * self.settings.updates_per_epoch + self._updates_done
        if self.ema is not None and done % self.settings.ema_every == 0:
            self.ema.step()

    def _micro_per_epoch(self) -> int:
        return self.settings.updates_per_epoch * self.settings.accum_grad

    def _autocast(self):
        return self.optim_sches.autocast() if self.optim_sches is not None else nullcontext()

    def _new_monitor(self, stage: str):
        try:
            from audioflow.monitoring.stage import StageMonitor
        except ImportError:  # monitoring not installed: train without live metrics
            return None
        port = int(self._select("monitoring.port", 0))
        monitor = StageMonitor(
            self.xp.sig, stage, self.rank, port, self._select("monitoring.pushgateway")
        )
        monitor.start()
        monitor.set_epoch(self.epoch)
        return monitor

    def _load_epoch_checkpoint(self, epoch: int) -> None:
        path = checkpoint.epoch_path(self.folder, epoch)
        payload = checkpoint.load(path, sig=self.xp.sig, kind="checkpoint")
        self._load_payload(payload, restore_rng=False)


def _all_finite(grads: list[torch.Tensor], one_device: bool) -> bool:
    """Whether every gradient is finite (one read of each, one host sync)."""
    if any(g.is_sparse for g in grads):
        return all(bool(torch.isfinite(g.coalesce().values()).all()) for g in grads)
    if one_device:  # foreach: one kernel launch per dtype instead of one per tensor
        return bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


def _is_nonfinite(value) -> bool:
    if torch.is_tensor(value):
        return value.numel() == 1 and not bool(torch.isfinite(value.detach()).all())
    return isinstance(value, float) and not (value == value and abs(value) != float("inf"))
