"""What ``audioflow run`` checks before it writes an XP folder or starts workers.

The config itself is checked when it is composed (``audioflow.config``); these are the
checks that need the machine or the files a run would read: the device, the process
count against the batch size, a ``continue_from=`` file, and, for ``--accept-drift``, the
XP's checkpoint against the model its changed config builds. A failure is a ConfigError
(one line per problem, exit status 2) raised while nothing has been written yet.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from audioflow.config import layout
from audioflow.config.errors import ConfigError

# Keys every StandardSolver run reads (solver/default.yaml and config.yaml set them).
REQUIRED = ("solver", "device", "seed", "optim.epochs", "optim.updates_per_epoch")


def missing_keys(cfg) -> list[str]:
    """A line per required key that the config lacks (``~optim`` deleted it, or a user
    config.yaml never set it)."""
    return [
        f"{key}: missing; every run needs it (set it, or drop the override that deletes it)"
        for key in REQUIRED
        if OmegaConf.select(cfg, key, default=None) is None
    ]


def process_count(requested: str, device: str) -> int:
    """Processes for ``-d``: the number given, or for a bare ``-d`` every visible GPU when
    the XP runs on CUDA, else 1."""
    if requested != "all":
        return int(requested)
    if device.startswith("cuda") and torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return 1


def device_problems(device: str, nproc: int) -> list[str]:
    """Whether this machine has the device (and, on CUDA, one GPU per process)."""
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return [f"device={device}: no CUDA GPU is visible on this machine; use device=cpu"]
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= count:
            return [f"device={device}: this machine has {count} GPU(s), cuda:0-{count - 1}"]
        if nproc > count:
            return [f"-d {nproc} with device={device}: one GPU per process, and {count} visible"]
    if device == "mps" and not torch.backends.mps.is_available():
        return ["device=mps: MPS is not available on this machine; use device=cpu"]
    return []


def batch_problems(cfg, nproc: int) -> list[str]:
    """A global batch (``dataset.batch_size``, per stage too) must split over the processes."""
    if nproc <= 1:
        return []
    problems = []
    for key in ("dataset.batch_size", *(f"dataset.{stage}.batch_size" for stage in layout.STAGES)):
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, int) and not isinstance(value, bool) and value % nproc:
            problems.append(
                f"{key}={value} does not divide over {nproc} processes (-d {nproc}); "
                f"use a multiple of {nproc} or another -d"
            )
    return problems


def solver_class(cfg) -> type:
    """The solver class ``cfg.solver`` names.

    Raises:
        ConfigError: no such registered solver or class.
    """
    from .registry import SolverNotFoundError, get_solver_class

    try:
        return get_solver_class(str(cfg.solver))
    except SolverNotFoundError as exc:
        raise ConfigError(str(exc)) from None


def _has_checkpoint(folder: Path) -> Path | None:
    latest = folder / layout.LATEST_CHECKPOINT
    if latest.is_file():
        return latest
    epochs = sorted(folder.glob("checkpoint_*.th"), key=lambda p: p.stat().st_mtime)
    return epochs[-1] if epochs else None


def check_xp(
    cfg,
    sig: str,
    *,
    overrides: list[str],
    config_dir: str | None,
    accept_drift: bool,
    stage: str | None,
    clear: bool,
    yes: bool,
) -> None:
    """The checks on the files a run of this XP reads, then ``--clear``.

    Args:
        cfg: the composed config.
        sig: its signature.
        overrides, config_dir: as given (to reopen the XP for the drift check).
        accept_drift: ``--accept-drift``.
        stage: ``--stage`` (None for the whole loop).
        clear: delete the XP folder first (``--clear``), asking unless ``yes``.

    Raises:
        ConfigError: a bad ``continue_from`` file, a checkpoint that does not fit the
            changed config's model, a refused ``--clear``, a drift not accepted.
    """
    from audioflow.config import xp_root

    folder = layout.xp_folder(xp_root(), sig)
    exists = (folder / layout.CONFIG_FILE).is_file()
    model = _ModelStates(cfg, sig)
    source = OmegaConf.select(cfg, "continue_from", default=None)
    if source and stage in (None, "train") and (clear or not exists or not _has_checkpoint(folder)):
        _check_continue_from(str(source), model)
    if clear and exists:
        _clear(sig, folder, yes)
        return
    if not exists:
        return
    from audioflow.config.errors import DriftError
    from audioflow.config.folder import get_xp

    try:
        get_xp(overrides, config_dir=config_dir, accept_drift=False)
    except DriftError:
        if not accept_drift:
            raise
        latest = _has_checkpoint(folder)
        if latest is not None:
            _check_fits_after_drift(latest, model)


def _check_continue_from(source: str, model: _ModelStates) -> None:
    from audioflow.config import xp_root
    from audioflow.config.paths import resolve_path

    from . import trusted

    what = f"continue_from={source}"
    try:
        path = trusted.source_file(source, xp_root(), resolve_path)
        saved = trusted.saved_states(trusted.load_trusted(path, what), path, what)
        problem = trusted.check_fits(saved, model.states())
    except trusted.UntrustedCheckpoint as exc:
        raise ConfigError(str(exc)) from None
    if problem:
        raise ConfigError(
            f"{what}: {path} is not a trusted checkpoint for this model: {problem}; give a "
            "checkpoint of the same architecture"
        )


def _check_fits_after_drift(path: Path, model: _ModelStates) -> None:
    from . import trusted

    try:
        payload = trusted.load_trusted(path, "--accept-drift")
    except trusted.UntrustedCheckpoint:
        return  # the run falls back past unusable checkpoints itself
    state = payload.get("state") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        return
    problem = trusted.check_fits(state, model.states())
    if problem:
        raise ConfigError(
            f"--accept-drift: {path} does not fit the model the changed config builds "
            f"({problem}); the architecture changed: start afresh with --clear, or restore "
            "the old default"
        )


def _clear(sig: str, folder: Path, yes: bool) -> None:
    from audioflow.config.commands.clear import confirm, delete_xp, describe

    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError(
                f"--clear deletes {describe(folder)}: pass --yes to confirm (no terminal to ask)"
            )
        if not confirm(f"delete {describe(folder)} and start XP {sig} afresh? [y/N] "):
            raise ConfigError(f"--clear: kept XP {sig}; nothing ran (answer y, or pass --yes)")
    delete_xp(sig, folder)
    print(f"deleted {folder}", flush=True)


class _ModelStates:
    """The ``state_dict()`` of the solver an XP's config builds, built once on demand in a
    temporary folder on the CPU (nothing is written to the XP folder)."""

    def __init__(self, cfg, sig: str):
        self.cfg, self.sig, self._states = cfg, sig, None

    def states(self) -> dict:
        if self._states is None:
            self._states = self._build()
        return self._states

    def _build(self) -> dict:
        from audioflow.config.xp import XP, using_xp

        cfg = copy.deepcopy(self.cfg)
        OmegaConf.set_struct(cfg, False)
        # A probe: no GPU memory, no log lines on the terminal, no TensorBoard files.
        OmegaConf.update(cfg, "device", "cpu")
        OmegaConf.update(cfg, "logging.level", "ERROR")
        OmegaConf.update(cfg, "logging.log_tensorboard", False)
        solver_cls = solver_class(cfg)
        with tempfile.TemporaryDirectory(prefix="audioflow-probe-") as tmp:
            probe = XP(sig=self.sig, overrides=[], cfg=cfg, folder=Path(tmp))
            with using_xp(probe):
                solver = solver_cls(cfg)
            try:
                return solver.state_dict()
            finally:
                for handler in list(solver.logger.handlers):
                    handler.close()
                    solver.logger.removeHandler(handler)
