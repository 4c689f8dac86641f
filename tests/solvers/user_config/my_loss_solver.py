"""The same toy task written OptimScheduler-style: run_step returns named losses.

No optimizer here: ``optim_sches`` in the config defines it, and the base runs backward,
gradient accumulation and the optimizer steps.
"""

import os

import torch
from my_solver import MySolver


class MyLossSolver(MySolver):
    def build_model(self):
        self.model = self.make_model()
        self.register_stateful("model")
        self.register_best("model")
        self.register_ema("model")

    def _global_update(self):
        return self.optim_sches.real_step + self.optim_sches.skipped_updates + 1

    def run_step(self, idx, batch, metrics):
        x, y = (t.to(self.device) for t in batch)
        noise = self.cfg.toy.noise * torch.randn_like(x) if self.is_training else 0.0
        loss = self.criterion(self.model(x + noise), y)
        if self.is_training:
            toy, update = self.cfg.toy, self._global_update()
            if update == int(os.environ.get("MY_SOLVER_KILL_AT", "0")):
                raise RuntimeError(f"crash at update {update}")
            if toy.nan_from and update >= toy.nan_from and update <= (toy.nan_until or update):
                loss = loss * float("nan")
        return {"loss": loss}
