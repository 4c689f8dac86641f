"""A user's solver written like the MyNewSolver example of AudioCraft's TRAINING.md.

A small MLP regressing a fixed random projection of synthetic inputs; it lives outside
the audioflow package and is picked with ``solver=my_solver.MySolver --config-dir``.
"""

import os
import signal

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from audioflow import optim
from audioflow.solvers import base


class GlobalBatchSampler:
    """Shuffled global batches of ``batch_size``; each rank takes its slice of every batch.

    With this sampler N processes with batch B/N see the same global batches as one
    process with batch B, which is what makes 1- and 2-process runs comparable.
    """

    def __init__(self, n, batch_size, rank, world_size, seed):
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world_size
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n // self.batch_size

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=gen).tolist()
        per_rank = self.batch_size // self.world
        for b in range(len(self)):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.rank * per_rank : (self.rank + 1) * per_rank]


def _env_int(name):
    return int(os.environ.get(name, "0"))


def _data(n, dim, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen)
    w = torch.randn(dim, 1, generator=torch.Generator().manual_seed(1234))
    return TensorDataset(x, x @ w + 0.1 * torch.randn(n, 1, generator=gen))


class MySolver(base.StandardSolver):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.criterion = nn.MSELoss()

    def best_metric(self):
        return "loss"

    def make_model(self) -> nn.Module:
        """The toy regressor, shared with the OptimScheduler-style variant."""
        toy = self.cfg.toy
        return nn.Sequential(
            nn.Linear(toy.dim, toy.hidden),
            nn.Tanh(),
            nn.Dropout(toy.dropout),
            nn.Linear(toy.hidden, 1),
        ).to(self.device)

    def build_model(self):
        self.model = self.make_model()
        self.optimizer = optim.build_optimizer(self.model.parameters(), self.cfg.optim)
        self.register_stateful("model", "optimizer")
        self.register_best("model")
        self.register_ema("model")

    def build_dataloaders(self):
        toy = self.cfg.toy
        self.local_batch_size  # noqa: B018 - refuses a global batch that does not divide
        sampler = GlobalBatchSampler(
            toy.n_train, self.cfg.dataset.batch_size, self.rank, self.world_size, self.cfg.seed
        )
        valid = DataLoader(_data(toy.n_valid, toy.dim, 7), batch_size=8)
        self.dataloaders = {
            "train": DataLoader(_data(toy.n_train, toy.dim, 3), batch_sampler=sampler),
            "valid": valid,
            "evaluate": valid,
        }

    def _global_update(self):
        return (self.epoch - 1) * self.cfg.optim.updates_per_epoch + self.loop.update + 1

    def run_step(self, idx, batch, metrics):
        x, y = (t.to(self.device) for t in batch)
        # input noise draws from the torch RNG, so exact resume must restore it
        noise = self.cfg.toy.noise * torch.randn_like(x) if self.is_training else 0.0
        loss = self.criterion(self.model(x + noise), y)
        if self.current_stage == "valid" and self.epoch == _env_int("MY_SOLVER_KILL_IN_VALID"):
            self._crash(f"valid of epoch {self.epoch}")
        if self.is_training:
            toy, update = self.cfg.toy, self._global_update()
            if update == _env_int("MY_SOLVER_KILL_AT"):
                self._crash(f"update {update}")
            if toy.nan_from and update >= toy.nan_from and update <= (toy.nan_until or update):
                loss = loss * float("nan")
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        metrics["loss"] = loss
        return metrics

    def _crash(self, where):
        """Crash tests: SIGKILL this process, or raise when MY_SOLVER_CRASH=raise."""
        if os.environ.get("MY_SOLVER_CRASH") == "raise":
            raise RuntimeError(f"crash at {where}")
        os.kill(os.getpid(), signal.SIGKILL)

    def evaluate(self):
        total = 0.0
        for x, y in self.dataloaders["evaluate"]:
            total += float(self.criterion(self.model(x.to(self.device)), y.to(self.device)))
        return {"loss": total / len(self.dataloaders["evaluate"])}

    def generate(self):
        x = torch.linspace(-1, 1, 8 * self.cfg.toy.dim).reshape(8, self.cfg.toy.dim)
        pred = self.model(x.to(self.device)).cpu()
        if self.is_rank_zero:  # one writer per XP folder
            self.samples_folder.mkdir(parents=True, exist_ok=True)
            torch.save(pred, self.samples_folder / "pred.th")
        return {"samples": 8}
