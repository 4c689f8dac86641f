"""Per-update overhead of StandardSolver's train stage against a bare PyTorch loop.

Same model, optimizer and data, measured side by side in one process and in lockstep: each
solver update is paired with one hand-written update (run from inside the solver's
``run_step``, timed on its own and subtracted from the solver's figure). Both therefore see
the same machine load at the same moment, which matters on a shared 2-core VM where the load
swings step times by +-30 %. Figures are medians of per-update times and of per-update
ratios; the two updates of each step run in alternating order. Target: solver / bare <= 1.02.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/solver_overhead.py [--model conv|mlp] [--calibrate]

``--calibrate`` gives both sides the same update code: what it reads is the method's own bias.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from audioflow.config.xp import XP, set_current_xp
from audioflow.optim import build_optimizer
from audioflow.solvers.base import StandardSolver

CONFIG = Path(__file__).resolve().parents[1] / "config"


def make_model(kind: str) -> nn.Module:
    """``conv``: a small 1-D conv encoder on 0.5 s of 16 kHz audio (compute-heavy per
    parameter, like audio models); ``mlp``: a 1.05M-parameter MLP (parameter-heavy: the worst
    case for per-update work that scales with the parameter count)."""
    torch.manual_seed(0)
    if kind == "conv":
        return nn.Sequential(
            nn.Conv1d(1, 32, 8, stride=2, padding=3),  # (B, 32, T/2)
            nn.GELU(),
            nn.Conv1d(32, 64, 8, stride=4, padding=2),  # (B, 64, T/8)
            nn.GELU(),
            nn.Conv1d(64, 64, 8, stride=4, padding=2),  # (B, 64, T/32)
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(64, 1),
        )
    return nn.Sequential(nn.Linear(512, 1024), nn.GELU(), nn.Linear(1024, 512), nn.Linear(512, 1))


def make_loader(kind: str) -> DataLoader:
    gen = torch.Generator().manual_seed(1)
    shape, batch = ((256, 1, 8000), 16) if kind == "conv" else ((2048, 512), 128)
    data = TensorDataset(
        torch.randn(*shape, generator=gen), torch.randn(shape[0], 1, generator=gen)
    )
    return DataLoader(data, batch_size=batch, shuffle=True, generator=gen)


class BareLoop:
    """The hand-written loop, one update per call: next batch, forward, backward, step.

    It trains the solver's own model and optimizer state but calls the plain ``Adam.step``
    (``torch_step``, not the optimizer protocol's update): CPU kernel times depend on the
    values of weights and optimizer state, and two copies drifting apart were measured
    10-25 % apart while running identical code.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, kind: str) -> None:
        self.model, self.optimizer = model, optimizer
        self.loader = make_loader(kind)
        self.iterator = iter(self.loader)

    def update(self) -> float:
        """Run one update; returns its wall time in seconds."""
        t0 = time.perf_counter()
        try:
            x, y = next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.loader)
            x, y = next(self.iterator)
        loss = nn.functional.mse_loss(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.torch_step()
        return time.perf_counter() - t0


class BenchSolver(StandardSolver):
    """An AudioCraft-style solver: backward and step inside run_step."""

    bare: BareLoop | None = None
    calibrate = False

    def build_model(self):
        self.model = make_model(self.cfg.bench_model)
        self.optimizer = build_optimizer(self.model.parameters(), self.cfg.optim)
        self.register_stateful("model", "optimizer")
        self.register_best("model")
        self.stamps: list[float] = []
        self.bare_times: list[float] = []

    def build_dataloaders(self):
        self.dataloaders = {"train": make_loader(self.cfg.bench_model)}

    def run_step(self, idx, batch, metrics):
        self.stamps.append(time.perf_counter())
        # the bare update runs before the solver's on even steps, after it on odd ones, so
        # that neither side always finds the caches warmed by the other
        if self.bare is not None and idx % 2 == 0:
            self.bare_times.append(self.bare.update())
        x, y = batch
        loss = nn.functional.mse_loss(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        if self.calibrate:  # the bare loop's own code: what the lockstep method reads as 0
            self.optimizer.torch_step()
        else:
            self.optimizer.step()
        metrics["loss"] = loss
        if self.bare is not None and idx % 2 == 1:
            self.bare_times.append(self.bare.update())
        return metrics

    def evaluate(self):
        return {}

    def generate(self):
        return {}


def build_solver(folder: Path, updates: int, kind: str) -> BenchSolver:
    cfg = OmegaConf.merge(
        OmegaConf.masked_copy(OmegaConf.load(CONFIG / "config.yaml"), ["device", "seed"]),
        OmegaConf.load(CONFIG / "solver" / "default.yaml"),
    )
    cfg.solver = "bench"
    cfg.bench_model = kind
    cfg.num_threads = torch.get_num_threads()
    cfg.optim.updates_per_epoch = updates
    cfg.optim.epochs = 1
    cfg.logging = {"level": "WARNING", "log_updates": 10, "log_tensorboard": False}
    cfg.monitoring = {"port": 0, "pushgateway": None}
    set_current_xp(XP(sig="bench000", overrides=[], cfg=cfg, folder=folder))
    return BenchSolver(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200, help="updates in the measured epoch")
    parser.add_argument("--model", choices=["conv", "mlp"], default="conv")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="solver's run_step uses the bare update's code (plain Adam.step, no protocol): "
        "the remaining 'overhead' is the solver loop plus the method's own bias",
    )
    args = parser.parse_args()
    BenchSolver.calibrate = args.calibrate
    with tempfile.TemporaryDirectory() as tmp:
        solver = build_solver(Path(tmp), args.updates, args.model)
        solver.bare = BareLoop(solver.model, solver.optimizer, args.model)
        for _ in range(5):  # warm-up of the bare path
            solver.bare.update()
        solver.epoch = 1
        t0 = time.perf_counter()
        solver._run("train", solver.train)
        epoch_seconds = time.perf_counter() - t0
    stamps, bare = solver.stamps, solver.bare_times
    # solver update i: from the start of run_step i to the start of run_step i+1, minus
    # the bare update run inside it; the first 10 updates warm up (optimizer guard, ...)
    ours = [b - a - t for a, b, t in zip(stamps, stamps[1:], bare)][10:]
    bare = bare[10 : 10 + len(ours)]
    ratios = [s / b for s, b in zip(ours, bare)]
    s, b = statistics.median(ours), statistics.median(bare)
    per_epoch = epoch_seconds - (stamps[-1] - stamps[0]) - s - solver.bare_times[-1]
    params = sum(p.numel() for p in solver.model.parameters())
    check = "off" if args.calibrate else "on"
    if args.calibrate:
        print("calibration: the solver's run_step runs the bare update's code")
    print(f"model {args.model} ({params} parameters), Adam, optimizer protocol {check}")
    print(f"{len(ours)} measured updates")
    print(f"bare loop: median update {b * 1e3:.3f} ms")
    print(f"solver   : median update {s * 1e3:.3f} ms")
    print(f"overhead per update: {(s - b) * 1e3:.3f} ms")
    print(f"ratio of medians solver / bare: {s / b:.3f}   (target <= 1.02)")
    print(f"median of per-update ratios:   {statistics.median(ratios):.3f}")
    print(f"per-epoch fixed work (stage start/end, metrics, logging): {per_epoch * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
