"""A generator and a critic trained through two OptimSchedulers (named losses).

The critic is called through ``.module`` (outside DDP's forward), as a discriminator
often is. Hooks for the optimizer-protocol tests: ``toy.nan_gen_at`` makes the
generator's loss NaN at one update, ``toy.critic_none_last`` returns ``critic_loss=None``
on the last micro-step of every window.
"""

from my_solver import MySolver
from torch import nn


class GenCritic(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gen = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.critic = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x):  # (B, dim) -> (B, 1)
        return self.gen(x)


class TwoLossSolver(MySolver):
    def best_metric(self):
        return "gen_loss"

    def build_model(self):
        toy = self.cfg.toy
        self.model = GenCritic(toy.dim, toy.hidden).to(self.device)
        self.register_stateful("model")
        self.register_best("model")
        self.register_ema("model")

    def run_step(self, idx, batch, metrics):
        x, y = (t.to(self.device) for t in batch)
        pred = self.model(x)
        critic = self._get("model").critic  # outside DDP's forward
        gen_loss = (pred - y).pow(2).mean() + 0.1 * critic(pred).mean()
        critic_loss = critic(pred.detach()).pow(2).mean()
        if self.is_training:
            toy = self.cfg.toy
            update = self._global_update()
            if update == toy.nan_gen_at:
                gen_loss = gen_loss * float("nan")
            last = (self.loop.micro + 1) % self.settings.accum_grad == 0
            if toy.critic_none_last and last:
                critic_loss = None  # sits the critic out for this micro-step
        return {"gen_loss": gen_loss, "critic_loss": critic_loss}
