"""Cost of OptimSchedulerGroup.step against the hand-written training step it replaces.

Two comparisons on a small MLP (CPU, fp32), steps alternating between the two variants so
both see the same load from other processes:

1. one OptimScheduler over the whole model vs ``loss.backward(); clip; opt.step()``
   (target ratio <= 1.05: the group adds only bookkeeping on this path);
2. two OptimSchedulers (encoder / decoder, two losses) vs the naive loop that calls
   ``backward(retain_graph=True)`` per loss and lets each loss leak into the other's
   gradients (target ratio <= 1.3: the price of per-loss gradients for own parameters).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/optim_step.py [--steps 400]
Prints the median step time of each variant and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from audioflow.optim import build_optim_sches


class EncDec(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512))
        self.decoder = nn.Sequential(nn.ReLU(), nn.Linear(512, 256))

    def forward(self, x):  # (B, 256) -> (B, 512), (B, 256)
        h = self.encoder(x)
        return h, self.decoder(h)


def entry(modules, loss):
    conf = {"optim_type": "AdamW", "optim_conf": {"lr": 1e-3}, "optim_loss": loss}
    if modules:
        conf["updated_modules"] = modules
    return {"type": "constant.ConstantLr", "conf": conf}


def losses_of(model, x):
    h, y = model(x)
    return {"rec": (y - x).pow(2).mean(), "reg": h.pow(2).mean()}


def compare(steps: int, split: bool) -> tuple[float, float]:
    """Median seconds of a hand-written step and of a group step, alternating."""
    torch.manual_seed(0)
    plain_model, group_model = EncDec(), EncDec()
    group_model.load_state_dict(plain_model.state_dict())
    if split:
        cfg = {"enc": entry(["encoder"], "reg"), "dec": entry(["decoder"], "rec")}
        plain_opts = [
            (torch.optim.AdamW(plain_model.encoder.parameters(), lr=1e-3), "reg"),
            (torch.optim.AdamW(plain_model.decoder.parameters(), lr=1e-3), "rec"),
        ]
    else:
        cfg = {"main": entry(None, "rec")}
        plain_opts = [(torch.optim.AdamW(plain_model.parameters(), lr=1e-3), "rec")]
    group = build_optim_sches(
        cfg, group_model, distributed=False, accum_grad=1, precision="fp32", ft_factor=1.0
    )
    x = torch.randn(64, 256)  # (B, features)
    times: tuple[list[float], list[float]] = ([], [])
    for step_num in range(1, steps + 1):
        start = time.perf_counter()
        if step_num % 2:
            losses = losses_of(plain_model, x)
            for i, (_, name) in enumerate(plain_opts):
                losses[name].backward(retain_graph=i < len(plain_opts) - 1)
            for opt, _ in plain_opts:
                params = [p for g in opt.param_groups for p in g["params"]]
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
        else:
            with group.accumulate(group_model, step_num), group.autocast():
                group.step(losses_of(group_model, x), step_num)
        times[step_num % 2 == 0].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for split, label, target in ((False, "one optimizer", 1.05), (True, "two optimizers", 1.3)):
        compare(20, split)  # warm-up
        plain, group = compare(args.steps, split)
        print(
            f"{label}: hand-written {plain * 1e3:.2f} ms, group {group * 1e3:.2f} ms, "
            f"ratio {group / plain:.3f} (target <= {target})"
        )


if __name__ == "__main__":
    main()
