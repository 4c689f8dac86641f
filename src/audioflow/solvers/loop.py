"""Epochs and stages: the whole loop (``run``), one stage (``run_stage``), train/valid passes.

Stage order in an epoch: train, valid, then evaluate and generate every ``*.every`` epochs
and always at the last one. Non-train stages run in isolated RNG blocks seeded from
(seed, stage, epoch), so they never shift the training stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from . import checkpoint, distrib, history, logs, rng

STAGES = ("train", "valid", "evaluate", "generate")


class LoopMixin:
    """Loop half of :class:`~audioflow.solvers.base.StandardSolver`."""

    # -- whole loop ----------------------------------------------------------------------
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
        self._load_payload(payload)
        self.logger.info(
            "resumed at epoch %d, update %d%s",
            self.epoch,
            self._updates_done,
            " (epoch done)" if self._epoch_done else "",
        )
        return True

    def run(self) -> None:
        """Run every stage of every epoch up to ``optim.epochs``, resuming where it stopped."""
        self.restore()
        # Stage runs keep the best state in best.th only; without it the first valid here
        # would take any epoch for the best.
        self._load_best_file()
        epochs = self.settings.epochs
        done_through = self.epoch if self._epoch_done else self.epoch - 1
        for entry in self.history:  # a kill between an epoch's checkpoint and its marker
            if "train" in entry and entry["epoch"] <= done_through:
                self._ensure_train_marker(entry["epoch"])
        first = self.epoch + 1 if self._epoch_done else self.epoch
        if self.epoch >= 1 and history.read_marker(self.folder, "valid", self.epoch) is None:
            first = self.epoch  # trained by a stage run, not validated yet: finish that epoch
        for epoch in range(first, epochs + 1):
            if self.epoch != epoch:
                self._start_epoch(epoch)
            self._epoch_done = False
            entry = {"epoch": epoch}
            entry["train"] = self._stage_train()
            entry["valid"] = self._stage_valid()
            for stage in ("evaluate", "generate"):
                if self._due(stage, epoch, epochs):
                    entry[stage] = self._stage_best(stage)
            self.history.append(entry)
            self._epoch_done = True
            every = int(self.cfg.checkpoint.save_every)
            numbered = every > 0 and (epoch % every == 0 or epoch == epochs)
            self.save_checkpoint(epoch_file=numbered)
            if self.is_rank_zero:
                history.finish_stage(self.folder, "train", epoch, entry["train"])
                checkpoint.keep_last(self.folder, int(self.cfg.checkpoint.keep_last), self.logger)
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
        if stage not in STAGES or int(epoch) < 1:
            raise ValueError(f"--stage {stage} --epoch {epoch}: stage must be one of {STAGES}")
        epoch = int(epoch)
        if stage == "train":
            return self._run_train_until(epoch)
        if stage == "valid":
            self._load_epoch_checkpoint(epoch)
            self._load_best_file()
            self.epoch = epoch
            metrics = self._stage_valid()
            if self.is_rank_zero:
                checkpoint.keep_last(self.folder, int(self.cfg.checkpoint.keep_last), self.logger)
        else:
            if not self._load_best_file():
                raise checkpoint.CheckpointError(
                    f"{self.folder / checkpoint.BEST}: no best state yet; run --stage valid first"
                )
            if self.best_epoch is not None and self.best_epoch > epoch:
                # e.g. generate.every turned on after later epochs were validated: the best
                # state as of this epoch is gone, the stage runs on today's.
                self.logger.warning(
                    "%s epoch %d runs on the best state of epoch %d (validated later)",
                    stage,
                    epoch,
                    self.best_epoch,
                )
            self.epoch = epoch
            metrics = self._stage_best(stage)
        self.tensorboard.close()
        return metrics

    def _run_train_until(self, epoch: int) -> dict:
        self.restore()
        # Only a finished epoch counts: a mid-epoch checkpoint taken after the last update
        # is not yet the epoch's checkpoint_<E>.th, which valid E needs.
        done_through = self.epoch if self._epoch_done else self.epoch - 1
        if done_through >= epoch:
            self.logger.info("train through epoch %d: already done", epoch)
            return self._ensure_train_marker(epoch)
        metrics = {}
        for e in range(max(done_through + 1, 1), epoch + 1):
            if self.epoch != e:
                self._start_epoch(e)
            metrics = self._stage_train()
            self.history.append({"epoch": e, "train": metrics})
            self._epoch_done = True
            self.save_checkpoint(epoch_file=True)
            if self.is_rank_zero:
                history.finish_stage(self.folder, "train", e, metrics)
                checkpoint.keep_last(self.folder, int(self.cfg.checkpoint.keep_last), self.logger)
        self.tensorboard.close()
        return metrics

    def _ensure_train_marker(self, epoch: int) -> dict:
        """The train marker of a trained epoch, written from the history when missing.

        The checkpoint that says an epoch is done is written before its marker (the marker
        tells the workflow checkpoint_<E>.th exists); a kill in between leaves the marker
        to write on resume, from the metrics the checkpoint's history kept.
        """
        marker = history.read_marker(self.folder, "train", epoch)
        if marker is None:
            entry = next((h for h in self.history if h["epoch"] == epoch), {})
            marker = entry.get("train", {})
            if self.is_rank_zero:
                history.finish_stage(self.folder, "train", epoch, marker)
        return marker

    def _start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._epoch_done = False
        self._updates_done = 0
        self._micro_done = 0
        self._train_avg = logs.Averager()

    def _updates(self) -> int:
        return self.settings.updates_per_epoch

    def _due(self, stage: str, epoch: int, epochs: int) -> bool:
        every = int(self._select(f"{stage}.every", 1))
        return epoch == epochs or (every > 0 and epoch % every == 0)

    # -- stages ----------------------------------------------------------------------------
    def _run(self, stage: str, fn) -> dict:
        self.current_stage = stage
        self._monitor = self._new_monitor(stage)
        ok = False
        try:
            metrics = fn()
            metrics = distrib.average_metrics({k: float(v) for k, v in (metrics or {}).items()})
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

    def _stage_train(self) -> dict:
        return self._run("train", self.train)

    def _stage_valid(self) -> dict:
        def body():
            with rng.isolated(rng.derive_seed(self.settings.seed, "valid", self.epoch)):
                with self.swap_ema_state():
                    metrics = self.valid()
                    self._update_best(metrics)
            return metrics

        metrics = self._run("valid", body)
        if self.is_rank_zero:
            history.finish_stage(self.folder, "valid", self.epoch, metrics)
        return metrics

    def _stage_best(self, stage: str) -> dict:
        def body():
            with rng.isolated(rng.derive_seed(self.settings.seed, stage, self.epoch)):
                with self.swap_best_state(), torch.no_grad():
                    self._set_mode(False)
                    return getattr(self, stage)()

        metrics = self._run(stage, body)
        if self.is_rank_zero:
            history.finish_stage(self.folder, stage, self.epoch, metrics)
        return metrics

    def _set_mode(self, train: bool) -> None:
        for name in self._stateful:
            module = getattr(self, name)
            if isinstance(module, torch.nn.Module):
                module.train(train)

    # -- train / valid passes ------------------------------------------------------------------
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
        log_every = self.settings.log_updates
        if train:
            self._guard_optimizers()
            total, start, avg = self._micro_per_epoch(), self._micro_done, self._train_avg
            batches = self._train_batches(loader, start, total)
        else:
            total, start, avg = _length(loader), 0, logs.Averager()
            batches = enumerate(loader)
        label = f"{stage} {self.epoch}/{self.settings.epochs}"
        progress = logs.Progress(self.logger, label, total, start, log_every, self.is_rank_zero)
        accum = self.settings.accum_grad if train else 1
        pending: list[dict] = []
        t_wait = self._clock()
        try:
            for idx, batch in batches:
                t_step = self._clock()
                if train:
                    metrics, updated, skipped = self._train_step(idx, batch)
                    self._micro_done += 1
                else:
                    with torch.no_grad(), self._autocast():
                        metrics = self.run_step(idx, batch, {})
                    updated, skipped = True, False
                pending.append(metrics or {})
                if updated:
                    if not skipped:
                        for item in pending:
                            avg.add(item)
                    pending.clear()
                    if train:
                        self._updates_done += 1
                        self._after_update(metrics or {}, skipped)
                        self._maybe_save_mid_epoch()
                shown = avg.result() if progress.due_next() else None
                progress.step(shown)
                if train and updated:
                    # Monitors count every update; TensorBoard keeps the logging cadence.
                    self._report_update(shown, metrics or {}, accum, t_step, t_wait, progress)
                t_wait = self._clock()
        finally:
            progress.close()
        # averaged over ranks here, so every rank takes the same best-state decision
        return distrib.average_metrics(avg.result())

    def _report_update(self, shown, metrics, accum, t_step, t_wait, progress) -> None:
        step = (self.epoch - 1) * self._updates() + self._updates_done
        if self.is_rank_zero and shown is not None:
            self.tensorboard.add("train_updates", shown, step)
        if self._monitor is not None and getattr(self._monitor, "active", True):
            # plain floats, as the monitor expects (only an active monitor pays the host
            # read, one per device rather than one per metric)
            metrics = logs.scalar_floats(metrics)
            lrs = self.optim_sches.get_lrs() if self.optim_sches is not None else {}
            batch = self.settings.batch_size
            self._monitor.update(
                metrics,
                lrs,
                batch * accum,
                self._clock() - t_step,
                t_step - t_wait,
                progress.done / max(1, progress.total),
                progress.eta(),
            )

    def _maybe_save_mid_epoch(self) -> None:
        every = self.settings.save_every_updates
        if every > 0 and self._updates_done % every == 0:
            self._epoch_done = False
            self.save_checkpoint(epoch_file=False)

    def _train_batches(self, loader, start: int, total: int) -> Iterator[tuple[int, object]]:
        """Micro-batches ``start .. total-1`` of the epoch, re-iterating a short loader.

        Pass p of epoch E sets the sampler's epoch to E (p = 0) or E * 1000 + p, so each
        pass is a fresh deterministic order; iterators are created in an isolated RNG block
        and skipped batches are drawn there too, so resuming never shifts the RNG stream.
        """
        length = _length(loader)
        pos, pass_idx = 0, 0  # pos: micro index at the start of the current pass
        while pos < total:
            if length and pos + length <= start:  # a whole pass before the resume point
                pos += length
                pass_idx += 1
                continue
            skip = max(0, start - pos)
            sampler_epoch = self.epoch * 1000 + pass_idx if pass_idx else self.epoch
            with rng.isolated(rng.derive_seed(self.settings.seed, "train", self.epoch, pass_idx)):
                iterator = _start_pass(loader, sampler_epoch, skip)
            idx = pos + skip
            for batch in iterator:
                if idx >= total:  # also when resuming with the epoch's updates all done
                    return
                yield idx, batch
                idx += 1
            if idx == pos:
                raise RuntimeError("the train loader yielded no batch; check dataset.train")
            pos, pass_idx = idx, pass_idx + 1


def _length(loader) -> int:
    try:
        return len(loader)
    except TypeError:
        return 0


def _start_pass(loader, sampler_epoch: int, skip: int):
    """A fresh iterator positioned ``skip`` batches into the pass."""
    targets = [getattr(loader, a, None) for a in ("batch_sampler", "sampler", "dataset")]
    targets = [t for t in targets if t is not None]
    for target in targets:
        if hasattr(target, "set_epoch"):
            target.set_epoch(sampler_epoch)
    for target in targets[:2]:
        if hasattr(target, "set_start"):
            target.set_start(skip)
            skip = 0
            break
    iterator = iter(loader)
    for _ in range(skip):
        next(iterator)
    return iterator
