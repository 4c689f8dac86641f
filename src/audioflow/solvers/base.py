"""StandardSolver: the training loop every audioflow task solver builds on.

A task solver defines ``build_model``, ``build_dataloaders``, ``run_step``, ``evaluate``
and ``generate`` (the API of AudioCraft's TRAINING.md); this class owns epochs, stages,
checkpoints, resume, best state, EMA, distributed training and logging. Read it top-down:

- ``run()``: every epoch up to ``optim.epochs``, resuming where the XP stopped;
  ``run_stage(stage, epoch)``: one stage from what is on disk (the workflow's entry);
- ``run_epoch(epoch)``: the one epoch body (train, valid, evaluate, generate);
- ``commit(stage, metrics)``: the one place a finished stage is recorded, in a fixed
  order: checkpoint (train) or best state (valid), then history and marker, then old
  checkpoints are pruned;
- the train pass: ``common_train_valid`` -> ``_train_step`` (one micro-batch through the
  optimizer protocol, audioflow.optim) -> ``_after_update`` (NaN policy, EMA);
- state: everything checkpointed is registered (``register_stateful``), the loop counters
  included (:class:`~audioflow.solvers.state.LoopState`); the trained epochs are read from
  the history.

An epoch is exactly ``optim.updates_per_epoch`` updates. See docs/solvers.md.

Beside it, one concept each: ``settings`` (what the loop reads once), ``state`` (the
registry, the best state), ``nonfinite`` (the NaN policy), ``reporting`` (per-update
reports), ``history`` (markers), ``checkpoint`` (the files), ``distrib`` (the ranks),
``building`` (whether a solver is built to train).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from audioflow.config import layout
from audioflow.config.xp import current_xp
from audioflow.monitoring.stage import start_monitor

from . import checkpoint, distrib, history, logs, nonfinite, rng
from .batches import batch_items, loader_length, train_batches
from .building import builds_to_train, not_training  # noqa: F401 - run and tests use base.not_training
from .nonfinite import NonFiniteLossError, NonFiniteStageError  # noqa: F401 - user code imports them from here
from .reporting import UpdateReporter
from .settings import LoopSettings, select, torch_threads
from .state import BestState, LoopState, StateManager, continue_from_path, weights_from


class StandardSolver(ABC):
    """Base solver: subclass it, define the abstract methods, register your state.

    Args:
        cfg: the XP's composed config (omegaconf DictConfig); the XP folder comes from
            :func:`audioflow.config.xp.current_xp`.

    Attributes:
        cfg, xp, folder, device, rank, world_size, logger: the run's context.
        trains: False when built for a stage other than train (see :func:`not_training`):
            ``build_model`` may then skip the optimizers.
        epoch: the epoch of the stage being run (from 1). current_stage: its name.
        dataloaders: stage name -> loader, set by ``build_dataloaders``.
        protocol: the optimizer protocol (audioflow.optim.OptimProtocol) every update goes
            through; ``optim_sches`` is the same object when ``optim_sches`` is configured.
        loop, history, best: the loop counters, the finished stages' metrics per epoch,
            the best state; all three registered, hence checkpointed.
    """

    # DDP's find_unused_parameters for the registered modules it wraps: set True when a
    # step may leave some of a module's parameters out of the loss (e.g. a discriminator
    # trained every other step); it costs an extra graph traversal per backward. With named
    # losses, parameters used outside DDP's forward (a submodule called through .module)
    # work with both settings.
    ddp_find_unused_parameters: bool = False
    # How each metric reduces over processes: "mean" (default, weighted by the items each
    # process saw) or "sum" (counts: files written, errors).
    metric_reductions: dict[str, str] = {}

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.trains = builds_to_train()
        self.xp = current_xp()
        self.folder = Path(self.xp.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.device = distrib.init(str(cfg.device))
        self.rank, self.world_size = distrib.rank(), distrib.world_size()
        self.logger = logs.setup_logger(
            self.folder, self.rank, self._select("logging.level", "INFO")
        )
        torch.set_num_threads(torch_threads(cfg))
        self.settings = LoopSettings.from_config(cfg)
        self.stateful = StateManager(self)
        self.loop = LoopState()
        self.history: list[dict] = []
        self.best = BestState()
        self.register_stateful("loop", "history", "best")
        self.epoch = 0  # no stage run yet
        self.current_stage: str | None = None
        self.dataloaders: dict = {}
        self.ema = None
        self.protocol = None
        self.optim_sches = None
        self._stage_weight = 1.0
        self._monitor = None
        self._clock = time.perf_counter
        self._train_avg = logs.Averager()
        self.tensorboard = logs.TensorBoard(
            self.folder, self.is_rank_zero and bool(self._select("logging.log_tensorboard", False))
        )
        samples = self.settings.batch_size * self.settings.accum_grad
        self.reporter = UpdateReporter(self.tensorboard, self.is_rank_zero, samples, self._clock)
        rng.seed_all(int(cfg.seed))
        self.build_model()
        self._build_protocol()
        self._ddp_modules = []
        for name in self.stateful.stateful:  # DDP: gradients averaged over ranks in backward
            module = getattr(self, name)
            if isinstance(module, torch.nn.Module):
                wrapped = distrib.wrap(module, self.device, self.ddp_find_unused_parameters)
                setattr(self, name, wrapped)
                if isinstance(wrapped, DDP):
                    self._ddp_modules.append(wrapped)
        self._build_ema()
        self.build_dataloaders()
        self.logger.info(
            "solver %s, XP %s, %d process(es), device %s",
            type(self).__name__,
            self.xp.sig,
            self.world_size,
            self.device,
        )

    # -- to define in a task solver -----------------------------------------------------------
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
        ``self.optimizer`` yourself (built with ``audioflow.optim.build_optimizer``).
        Named losses (``optim_sches`` set): return them; the base back-propagates them and
        steps the OptimSchedulers. Both go through ``self.protocol``.
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

    # -- registration (called from build_model) -----------------------------------------------
    def register_stateful(self, *names: str) -> None:
        """Save and restore these attributes (anything with state_dict/load_state_dict)."""
        self.stateful.register(*names)

    def register_best(self, *names: str) -> None:
        """Keep the state of these attributes at the best valid metric (used by evaluate)."""
        self.stateful.best.extend(n for n in names if n not in self.stateful.best)

    def register_ema(self, *names: str) -> None:
        """Average these modules' weights (when ``optim.ema.use``); valid runs on the average."""
        self.stateful.ema.extend(n for n in names if n not in self.stateful.ema)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` through the optimizer protocol (needed for precision=fp16)."""
        self.protocol.backward(loss)

    def sample_generator(self, index: int) -> torch.Generator:
        """A generator for the random draws of one sample (augmentation, noise).

        Keyed by (seed, stage, epoch, sample index), so a sample gets the same draws
        whatever the number of processes and whichever process sees it.
        """
        key = (self.current_stage, self.epoch, int(index))
        return rng.sample_generator(self.settings.seed, *key, device=self.device)

    # -- the whole loop and one stage ---------------------------------------------------------
    def run(self) -> None:
        """Run every stage of every epoch up to ``optim.epochs``, resuming where it stopped."""
        self._require_training("run()")
        self.restore()
        # Stage runs keep the best state in best.th only; without it the first valid here
        # would take any epoch for the best.
        self.best.read(self.folder, self.xp.sig)
        trained = self.trained_epochs
        for epoch in range(1, trained + 1):
            # a kill between a checkpoint and its marker left the marker to write
            history.train_marker(self.folder, self.history, epoch, self.is_rank_zero)
            history.add_markers(self.history, self.folder, epoch)
        # the latest trained epoch may still miss a stage (killed during valid/evaluate)
        first = trained if trained and self.loop.micro == 0 and self._missing(trained) else None
        for epoch in range(first or trained + 1, self.settings.epochs + 1):
            self.run_epoch(epoch)
        self.tensorboard.close()

    def run_stage(self, stage: str, epoch: int) -> dict:
        """Run exactly one stage of one epoch from what is on disk (the workflow's entry).

        ``train``: from the latest checkpoint through the end of epoch ``epoch`` (a no-op
        when already there), writing ``checkpoint_<e>.th`` for each epoch trained.
        ``valid``: the weights of ``checkpoint_<epoch>.th`` (EMA when on), updates best.
        ``evaluate``/``generate``: the best state.

        Returns:
            The stage's metrics (also in ``stages/<stage>_<epoch>.json``).

        Raises:
            ValueError: unknown stage or epoch < 1.
            CheckpointError: the checkpoint or best state the stage needs is missing.
        """
        if stage not in layout.STAGES or int(epoch) < 1:
            raise ValueError(
                f"--stage {stage} --epoch {epoch}: stage must be one of {layout.STAGES}"
            )
        epoch = int(epoch)
        if stage == "train":
            self._require_training("--stage train")
            self.restore()
            metrics = self._train_through(epoch, epoch_files=True)
        elif stage == "valid":
            path = checkpoint.epoch_path(self.folder, epoch)
            payload = checkpoint.load(path, sig=self.xp.sig, kind="checkpoint")
            self.stateful.load_state_dict(payload["state"])
            self.best.read(self.folder, self.xp.sig)
            metrics = self._run_valid(epoch)
        else:
            if not self.best.read(self.folder, self.xp.sig):
                best = self.folder / layout.BEST_CHECKPOINT
                raise checkpoint.CheckpointError(
                    f"{best}: no best state yet; run --stage valid first"
                )
            if self.best.epoch is not None and self.best.epoch > epoch:
                # e.g. generate.every turned on after later epochs were validated: the best
                # state as of this epoch is gone, the stage runs on today's.
                self.logger.warning(
                    "%s epoch %d runs on the best state of epoch %d (validated later)",
                    stage,
                    epoch,
                    self.best.epoch,
                )
            metrics = self._run_on_best(stage, epoch)
        self.tensorboard.close()
        return metrics

    def run_epoch(self, epoch: int) -> dict:
        """The epoch body: train it (unless done), then each due stage not yet done.

        Returns:
            ``{"epoch": E, stage: metrics, ...}`` for the stages of this epoch.
        """
        every = int(self.cfg.checkpoint.save_every)
        numbered = every > 0 and (epoch % every == 0 or epoch == self.settings.epochs)
        entry = {"epoch": epoch, "train": self._train_through(epoch, epoch_files=numbered)}
        recorded = history.entry(self.history, epoch)
        for stage in layout.STAGES[1:]:
            done = recorded.get(stage)  # run() read the markers of epochs trained before
            if done is not None:
                entry[stage] = done
            elif self._due(stage, epoch):
                if stage == "valid":
                    entry[stage] = self._run_valid(epoch)
                else:
                    entry[stage] = self._run_on_best(stage, epoch)
        return entry

    def commit(self, stage: str, metrics: dict, *, epoch_file: bool = False) -> None:
        """Record a finished stage of ``self.epoch``; the order is the crash contract.

        1. refuse non-finite metrics (a stage that produced them is not done);
        2. the state the marker stands for: the checkpoint after train (the epoch's
           ``checkpoint_<E>.th`` when ``epoch_file``, then ``checkpoint.th``); best.th was
           written by the valid stage itself;
        3. ``history.json``, then the marker ``stages/<stage>_<E>.json`` (rank 0);
        4. prune epoch checkpoints that no stage needs any more (``checkpoint.keep_last``).

        Raises:
            NonFiniteStageError: a metric is NaN or infinite.
        """
        nonfinite.check_metrics(stage, self.epoch, metrics)
        history.entry(self.history, self.epoch)[stage] = metrics
        if stage == "train":
            self.loop = LoopState()  # the epoch is done: the next one starts from zero
            self._train_avg = logs.Averager()
            self.save_checkpoint(epoch_file=epoch_file)

        def record():
            history.finish_stage(self.folder, stage, self.epoch, metrics)
            checkpoint.keep_last(self.folder, int(self.cfg.checkpoint.keep_last), self.logger)

        distrib.on_rank_zero(record)

    # -- the stages ---------------------------------------------------------------------------
    def _train_through(self, epoch: int, epoch_files: bool) -> dict:
        """Train every epoch not trained yet, through ``epoch``; returns its train metrics."""
        for e in range(self.trained_epochs + 1, epoch + 1):
            self.epoch = e
            metrics = self._run("train", lambda: self._reduce(self.train()))
            # every rank took the same skip decisions (the gradients are all-reduced)
            metrics["skipped_updates"] = float(self.loop.skipped)
            nonfinite.check_weights(self.epoch, self.stateful)
            self.commit("train", metrics, epoch_file=epoch_files)
        self.epoch = epoch
        return history.train_marker(self.folder, self.history, epoch, self.is_rank_zero)

    def _run_valid(self, epoch: int) -> dict:
        def body():
            with rng.isolated(rng.derive_seed(self.settings.seed, "valid", epoch)):
                with self.swap_ema_state():
                    metrics = self._reduce(self.valid())
                    self._update_best(metrics)  # the weights being validated (EMA when on)
            return metrics

        self.epoch = epoch
        metrics = self._run("valid", body)
        self.commit("valid", metrics)
        return metrics

    def _run_on_best(self, stage: str, epoch: int) -> dict:
        def body():
            with rng.isolated(rng.derive_seed(self.settings.seed, stage, epoch)):
                with self.swap_best_state(), torch.no_grad():
                    self._set_mode(False)
                    return self._reduce(getattr(self, stage)())

        self.epoch = epoch
        metrics = self._run(stage, body)
        self.commit(stage, metrics)
        return metrics

    def _run(self, stage: str, fn) -> dict:
        self.current_stage = stage
        port = int(self._select("monitoring.port", 0))
        pushgateway = self._select("monitoring.pushgateway")
        self._monitor = start_monitor(self.xp.sig, stage, self.rank, self.epoch, port, pushgateway)
        ok = False
        try:
            metrics = fn()
            ok = True
        finally:
            if self._monitor is not None:
                self._monitor.finish(ok)
            self._monitor = None
            self.current_stage = None
        self.logger.info("%s epoch %d: %s", stage, self.epoch, logs.format_metrics(metrics))
        if self.is_rank_zero:
            self.tensorboard.add(stage, metrics, self.epoch)
        return metrics

    def _reduce(self, metrics: dict | None) -> dict:
        """This process's stage metrics -> the run's (every rank gets the same values)."""
        weight, self._stage_weight = self._stage_weight, 1.0
        plain = {k: float(v) for k, v in (metrics or {}).items()}
        return distrib.reduce_metrics(plain, weight, self.metric_reductions)

    def _due(self, stage: str, epoch: int) -> bool:
        if stage in ("train", "valid"):
            return True
        every = int(self._select(f"{stage}.every", 1))
        return epoch == self.settings.epochs or (every > 0 and epoch % every == 0)

    def _missing(self, epoch: int) -> bool:
        """Whether a due stage of ``epoch`` has no marker yet."""
        return any(
            self._due(s, epoch) and history.read_marker(self.folder, s, epoch) is None
            for s in layout.STAGES
        )

    @property
    def trained_epochs(self) -> int:
        """The last epoch whose training finished (0 for none), from the history."""
        return max((h["epoch"] for h in self.history if "train" in h), default=0)

    # -- train / valid passes -----------------------------------------------------------------
    def common_train_valid(self, stage: str) -> dict:
        """Iterate the stage's loader through ``run_step`` and return the mean metrics.

        Train: exactly ``updates_per_epoch * accum_grad`` batches (the loader is re-iterated
        when shorter), resuming at the checkpointed batch. Valid: one pass, no gradients.
        """
        train = stage == "train"
        if stage not in self.dataloaders:
            raise KeyError(
                f"{type(self).__name__}.build_dataloaders() set no {stage!r} loader in "
                f"self.dataloaders (have: {', '.join(self.dataloaders) or 'none'})"
            )
        loader = self.dataloaders[stage]
        self._set_mode(train)
        if train:
            total, start, avg = self._micro_per_epoch(), self.loop.micro, self._train_avg
            batches = train_batches(loader, self.epoch, self.settings.seed, start, total)
        else:
            total, start, avg = loader_length(loader), 0, logs.Averager()
            batches = enumerate(loader)
        label = f"{stage} {self.epoch}/{self.settings.epochs}"
        log_every = self.settings.log_updates
        progress = logs.Progress(
            self.logger, label, total, start, log_every, self.is_rank_zero, logs.progress_keys(self)
        )
        pending: list[dict] = []
        items = 0
        t_wait = self._clock()
        try:
            for idx, batch in batches:
                t_step = self._clock()
                if train:
                    metrics, window = self._train_step(idx, batch)
                    self.loop.micro += 1
                else:
                    with torch.no_grad(), self.protocol.autocast():
                        metrics = _detached(self.run_step(idx, batch, {}))
                    window = None
                    items += batch_items(batch)
                pending.append(metrics)
                ended = not train or window is not None  # inside a window: keep collecting
                if ended:
                    for item in self._after_update(pending, window) if train else pending:
                        avg.add(item)
                    pending = []
                    if train:
                        self._maybe_save_mid_epoch()
                shown = avg.result() if progress.due_next() else None
                progress.step(shown)
                if train and ended:
                    # Monitors count every update; TensorBoard keeps the logging cadence.
                    step = (self.epoch - 1) * self.settings.updates_per_epoch + self.loop.update
                    self.reporter.report(
                        shown, metrics, window, t_step, t_wait, progress, self._monitor, step
                    )
                t_wait = self._clock()
        finally:
            progress.close()
        # valid: a process's mean weighs by the items it saw (shards may be uneven)
        self._stage_weight = float(items) if not train and items else 1.0
        return avg.result()

    def _train_step(self, idx: int, batch) -> tuple[dict, object]:
        """One micro-batch through the optimizer protocol.

        Returns:
            ``(metrics, window)``: the step's metrics, detached (a window keeps no graph);
            the window's :class:`~audioflow.optim.WindowResult` (its ``lr/<opt>`` and
            ``grad_norm/<opt>`` go to the per-update reports), or None inside a window.
        """
        step_num = (self.epoch - 1) * self._micro_per_epoch() + self.loop.micro + 1
        with self.protocol.micro_step(step_num, self._ddp_modules):
            metrics = self.run_step(idx, batch, {}) or {}
            if self.optim_sches is not None:
                losses = {k: v for k, v in metrics.items() if v is None or torch.is_tensor(v)}
                self.protocol.backward_losses(losses)
        window = self.protocol.finish_micro_step()
        return _detached(metrics), window

    def _after_update(self, pending: list[dict], window) -> list[dict]:
        """NaN policy and EMA after an update; returns the metrics its means keep.

        A skip is per optimizer: when one optimizer's gradients are not finite only its
        update is skipped; EMA and the metrics follow the optimizers that moved.

        Raises:
            NonFiniteLossError: an optimizer skipped more than ``optim.max_nonfinite``
                consecutive updates.
        """
        self.loop.update += 1
        if nonfinite.count_skips(self.loop, window):
            if self._monitor is not None:
                self._monitor.skipped_update()
            limit = self.settings.max_nonfinite
            nonfinite.check_streak(pending, window, self.loop, self.epoch, limit, self.logger)
        done = (self.epoch - 1) * self.settings.updates_per_epoch + self.loop.update
        if window.moved and self.ema is not None and done % self.settings.ema_every == 0:
            self.ema.step()  # on the global update index: the cadence spans epochs
        return nonfinite.kept_metrics(pending, window)

    def _maybe_save_mid_epoch(self) -> None:
        every = self.settings.save_every_updates
        if every > 0 and self.loop.update % every == 0:
            self.save_checkpoint(epoch_file=False)

    def _micro_per_epoch(self) -> int:
        return self.settings.updates_per_epoch * self.settings.accum_grad

    def _set_mode(self, train: bool) -> None:
        for name in self.stateful.stateful:
            module = getattr(self, name)
            if isinstance(module, torch.nn.Module):
                module.train(train)

    # -- checkpoints, resume, best state ------------------------------------------------------
    def restore(self) -> bool:
        """Resume from the latest checkpoint, else start from ``continue_from`` if set.

        Returns:
            True when a checkpoint of this XP was loaded.
        """
        payload = checkpoint.load_latest(self.folder, self.xp.sig, self.logger)
        if payload is None:
            source = self._select("continue_from")
            if source:
                self._continue_from(str(source))
            return False
        self.stateful.load_state_dict(payload["state"])
        mine = payload
        per_rank = payload.get("per_rank")
        if per_rank and len(per_rank) == self.world_size:
            mine = per_rank[self.rank]  # same world size: this rank's own state
        self._train_avg.load_state_dict(mine["train_metrics"], self.device)
        rng.set_state(mine["rng"])
        epoch, update, done = self.trained_epochs + 1, self.loop.update, ""
        if self.loop.micro == 0 and epoch > 1:  # between epochs: the last one is done
            epoch, update, done = epoch - 1, self.settings.updates_per_epoch, " (epoch done)"
        self.logger.info("resumed at epoch %d, update %d%s", epoch, update, done)
        return True

    def save_checkpoint(self, epoch_file: bool = False) -> None:
        """Write ``checkpoint.th`` (and ``checkpoint_<epoch>.th``) on rank 0, atomically.

        Raises:
            DiskFullError: the disk filled up (rank 0); every other rank raises
                :class:`~audioflow.solvers.distrib.PeerError`.
        """
        mine = {"train_metrics": self._train_avg.state_dict(), "rng": rng.get_state()}
        per_rank = distrib.all_gather_objects(mine) if self.world_size > 1 else None

        def write():
            t0 = self._clock()
            payload = {"kind": "checkpoint", "sig": self.xp.sig, "state": self.state_dict()}
            payload.update(mine)
            if per_rank is not None:
                # Each rank's own running train means and RNG streams (ranks see other
                # batches, and may draw other amounts of random numbers).
                payload["per_rank"] = per_rank
            if epoch_file:
                checkpoint.save(payload, checkpoint.epoch_path(self.folder, self.epoch))
            checkpoint.save(payload, self.folder / layout.LATEST_CHECKPOINT)
            seconds = self._clock() - t0
            self.logger.debug("checkpoint written in %.3fs", seconds)
            if self._monitor is not None:
                self._monitor.checkpoint_written(seconds)

        distrib.on_rank_zero(write)

    def state_dict(self) -> dict:
        """``{name: state}`` of every registered attribute."""
        return self.stateful.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Load what :meth:`state_dict` returned (missing names are an error)."""
        self.stateful.load_state_dict(state)

    def _update_best(self, metrics: dict) -> bool:
        """Keep the validated weights as best if ``metrics`` beat the best so far."""
        configured = "best" in self.cfg
        name = (self.cfg.best.metric if configured else None) or self.best_metric()
        lower = bool(self.cfg.best.lower_is_better) if configured else True

        def snapshot():
            return self.stateful.snapshot(self.stateful.best)

        taken = self.best.offer(metrics, name, lower, self.epoch, snapshot, self.logger)

        def save():
            if taken:
                self.best.save(self.folder, self.xp.sig, name, metrics)

        distrib.on_rank_zero(save)  # taken or not: a collective every rank must reach
        return taken

    def swap_best_state(self):
        """Run a block with the best state loaded (no-op before the first valid)."""
        return self.stateful.swapped(self.best.state or {})

    def swap_ema_state(self):
        """Run a block with the EMA weights loaded (no-op when EMA is off)."""
        return self.stateful.swapped({} if self.ema is None else self.ema.state_dict()["state"])

    def _continue_from(self, source: str) -> None:
        """Load another XP's best state (SIG, checkpoint file, package folder) into this one."""
        from audioflow.config import xp_root

        path = continue_from_path(source, xp_root)
        states = weights_from(path, self.stateful.best)
        for name, state in states.items():
            self.stateful.get(name).load_state_dict(state)
        if self.ema is not None:
            self.ema = type(self.ema)(self.stateful.modules(self.stateful.ema), self.ema.decay)
        self.logger.info("continue_from=%s: loaded %s from %s", source, ", ".join(states), path)

    # -- construction helpers -----------------------------------------------------------------
    def _require_training(self, what: str) -> None:
        if not self.trains:
            raise RuntimeError(
                f"{what}: this solver was built inside not_training() (for a stage other "
                "than train) and has no optimizers; build it outside that block to train"
            )

    def _build_protocol(self) -> None:
        """The optimizer protocol: over ``optim_sches``, or adopting the solver's optimizers
        (``self.optimizer`` is reported as ``main``, others under their attribute names).

        A solver that will not train gets the protocol's precision (autocast in valid)
        and nothing else: no OptimSchedulers, and no optimizer state to load.
        """
        from audioflow.optim import build_protocol, build_solver_protocol

        if not self.trains:
            self.protocol = build_protocol(self.cfg.optim, self.device.type)
            return

        names = dict.fromkeys([*self.stateful.stateful, *vars(self)])
        self.protocol, plain = build_solver_protocol(
            self.cfg, {n: getattr(self, n, None) for n in names}, self.world_size, self.device
        )
        if self._select("optim_sches") is not None:
            self.optim_sches = self.protocol
        for attr in plain:
            self.logger.warning(
                "self.%s is a plain torch optimizer: it gets no NaN policy, clipping or "
                "ft_factor; build it with audioflow.optim.build_optimizer",
                attr,
            )
        self.register_stateful("protocol")

    def _build_ema(self) -> None:
        if not self.stateful.ema or not bool(self._select("optim.ema.use", False)):
            return
        from audioflow.optim.ema import ModuleDictEMA

        decay = float(self.cfg.optim.ema.decay)
        self.ema = ModuleDictEMA(self.stateful.modules(self.stateful.ema), decay)
        self.register_stateful("ema")

    # -- context ------------------------------------------------------------------------------
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
        name = str(self._select("generate.path", layout.SAMPLES_DIR))
        return self.folder / name / f"epoch_{self.epoch}"

    def _get(self, name: str):
        return self.stateful.get(name)

    def _select(self, key: str, default=None):
        return select(self.cfg, key, default)


def _detached(metrics: dict | None) -> dict:
    """Metrics to keep: tensors detached (no graph outlives its step), None dropped."""
    return {
        k: v.detach() if torch.is_tensor(v) else v for k, v in (metrics or {}).items()
        if v is not None
    }  # fmt: skip
