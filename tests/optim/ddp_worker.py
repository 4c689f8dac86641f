"""Worker for tests/optim/test_ddp.py, run by `torchrun --standalone --nproc-per-node 2`.

Runs each scenario on a real gloo process group and writes
``<out_dir>/rank<R>.json`` with the measured facts; the test asserts on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from audioflow.optim import build_optim_sches

K, B, DIM = 4, 2, 6  # micro-batches per update, micro-batch size per rank, feature width


class GenDisc(nn.Module):
    """A generator whose output feeds a discriminator: the two losses share a sub-graph."""

    def __init__(self):
        super().__init__()
        self.gen = nn.Sequential(nn.Linear(DIM, DIM), nn.Tanh(), nn.Linear(DIM, DIM))
        self.disc = nn.Sequential(nn.Linear(DIM, DIM), nn.Tanh(), nn.Linear(DIM, 1))

    def forward(self, x):  # x: (B, DIM)
        fake = self.gen(x)  # (B, DIM)
        return fake, self.disc(fake)  # (B, DIM), (B, 1)


def gd_losses(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict:
    fake, score = model(x)
    # d_loss deliberately does NOT detach `fake`: both losses run back through gen's graph.
    return {
        "g_loss": (fake - target).pow(2).mean() - score.mean(),
        "d_loss": score.pow(2).mean() + fake.pow(2).mean() * 0.1,
    }


def data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, DIM, generator=gen), torch.randn(n, DIM, generator=gen)


def global_batch(window: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's micro-batches of one window, concatenated (rank-major)."""
    xs, ts = [], []
    for rank in range(world):
        for micro in range(K):
            x, t = data(1000 * window + 10 * rank + micro, B)
            xs.append(x)
            ts.append(t)
    return torch.cat(xs), torch.cat(ts)


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def sgd_conf(modules, loss, lr=0.1):
    conf = {"optim_type": "SGD", "optim_conf": {"lr": lr}, "optim_loss": loss, "grad_clip": 0}
    if modules:
        conf["updated_modules"] = modules
    return {"type": "constant.ConstantLr", "conf": conf}


def scenario_accumulation(rank: int, world: int) -> dict:
    """k micro-batches of b per rank under DDP == one batch of k*b*world, no_sync until last."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(DIM, DIM), nn.Tanh(), nn.Linear(DIM, DIM))
    reference = nn.Sequential(nn.Linear(DIM, DIM), nn.Tanh(), nn.Linear(DIM, DIM))
    reference.load_state_dict(model.state_dict())
    ddp = DDP(model, bucket_cap_mb=25)  # one bucket: one all-reduce per synchronised backward
    reductions = []

    def counting_hook(_state, bucket):
        reductions.append(1)
        tensor = bucket.buffer().div_(world)
        return dist.all_reduce(tensor, async_op=True).get_future().then(lambda f: f.value()[0])

    ddp.register_comm_hook(None, counting_hook)
    group = build_optim_sches(
        {"main": sgd_conf(None, "loss")},
        ddp,
        distributed=True,
        accum_grad=K,
        precision="fp32",
        ft_factor=1.0,
    )
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    grads_differ_before_sync = []
    reductions_per_window = []
    step_num = 0
    for window in range(1, 3):
        before = len(reductions)
        for micro in range(K):
            step_num += 1
            x, t = data(1000 * window + 10 * rank + micro, B)
            with group.accumulate(ddp, step_num):
                loss = (ddp(x) - t).pow(2).mean()
                group.step({"loss": loss}, step_num)
            if micro == 0:
                g = model[0].weight.grad.detach().clone()
                others = [torch.zeros_like(g) for _ in range(world)]
                dist.all_gather(others, g)
                grads_differ_before_sync.append(not torch.allclose(others[0], others[1]))
        reductions_per_window.append(len(reductions) - before)
        # Reference: one plain step on the whole global batch of this window.
        gx, gt = global_batch(window, world)
        ref_opt.zero_grad()
        (reference(gx) - gt).pow(2).mean().backward()
        ref_opt.step()
    diff = (flat_params(model) - flat_params(reference)).abs().max().item()
    return {
        "max_abs_diff_vs_big_batch": diff,
        "reductions_per_window": reductions_per_window,
        "grads_differ_before_sync": grads_differ_before_sync,
        "real_step": group.real_step,
    }


def scenario_two_optim_sches(rank: int, world: int) -> dict:
    """gen/disc OptimSchedulers on a shared sub-graph under DDP, accum 2."""
    torch.manual_seed(1)
    model = GenDisc()
    reference = GenDisc()
    reference.load_state_dict(model.state_dict())
    ddp = DDP(model)
    cfg = {"gen": sgd_conf(["gen"], "g_loss"), "disc": sgd_conf(["disc"], "d_loss", lr=0.05)}
    accum = 2
    group = build_optim_sches(
        cfg, ddp, distributed=True, accum_grad=accum, precision="fp32", ft_factor=1.0
    )
    error = None
    try:
        for step_num in range(1, 2 * accum + 1):
            window = (step_num - 1) // accum + 1
            x, t = data(1000 * window + 10 * rank + (step_num - 1) % accum, B)
            with group.accumulate(ddp, step_num):
                group.step(gd_losses(ddp, x, t), step_num)
    except RuntimeError as exc:
        error = str(exc).splitlines()[0]
    # Reference on one process: each module moved by the gradient of its own loss only.
    for window in range(1, 3):
        xs, ts = [], []
        for r in range(world):
            for micro in range(accum):
                x, t = data(1000 * window + 10 * r + micro, B)
                xs.append(x)
                ts.append(t)
        losses = gd_losses(reference, torch.cat(xs), torch.cat(ts))
        gen_p, disc_p = list(reference.gen.parameters()), list(reference.disc.parameters())
        g_gen = torch.autograd.grad(losses["g_loss"], gen_p, retain_graph=True)
        g_disc = torch.autograd.grad(losses["d_loss"], disc_p)
        with torch.no_grad():
            for p, g in zip(gen_p, g_gen, strict=True):
                p -= 0.1 * g
            for p, g in zip(disc_p, g_disc, strict=True):
                p -= 0.05 * g
    mine = flat_params(model)
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    return {
        "error": error,
        "ranks_identical": bool(torch.equal(gathered[0], gathered[1])),
        "max_abs_diff_vs_reference": (mine - flat_params(reference)).abs().max().item(),
        "real_steps": {n: group[n].real_step for n in group.names},
    }


def scenario_unused_parameters(rank: int, world: int) -> dict:
    """A module outside the forward: works with and without find_unused_parameters."""
    outcome = {}
    for find_unused in (False, True):
        torch.manual_seed(2)
        model = GenDisc()
        model.spare = nn.Linear(3, 3)  # never used in forward
        ddp = DDP(model, find_unused_parameters=find_unused)
        cfg = {"gen": sgd_conf(["gen"], "g_loss"), "disc": sgd_conf(["disc"], "d_loss")}
        cfg["disc"]["conf"]["step_per_update"] = 2  # window 1: DDP gets zeros for disc
        group = build_optim_sches(
            cfg, ddp, distributed=True, accum_grad=2, precision="fp32", ft_factor=1.0
        )
        error = None
        try:
            for step_num in range(1, 5):
                x, t = data(100 * step_num + rank, B)
                with group.accumulate(ddp, step_num):
                    group.step(gd_losses(ddp, x, t), step_num)
        except RuntimeError as exc:
            error = str(exc).splitlines()[0]
        mine = flat_params(model)
        gathered = [torch.zeros_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine)
        outcome[f"find_unused={find_unused}"] = {
            "error": error,
            "ranks_identical": bool(torch.equal(gathered[0], gathered[1])),
            "real_steps": {n: group[n].real_step for n in group.names},
        }
    return outcome


class GenOnlyForward(GenDisc):
    """Only the generator runs in forward: the discriminator is called through .module."""

    def forward(self, x):  # x: (B, DIM) -> (B, DIM)
        return self.gen(x)


def outside_losses(ddp: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict:
    fake = ddp(x)
    disc = ddp.module.disc if isinstance(ddp, DDP) else ddp.disc  # outside DDP's forward
    return {
        "g_loss": (fake - target).pow(2).mean() - disc(fake).mean(),
        "d_loss": disc(fake.detach()).pow(2).mean(),
    }


def scenario_outside_forward(rank: int, world: int) -> dict:
    """find_unused_parameters=True with a submodule called outside DDP's forward, accum 2."""
    torch.manual_seed(3)
    model = GenOnlyForward()
    reference = GenOnlyForward()
    reference.load_state_dict(model.state_dict())
    ddp = DDP(model, find_unused_parameters=True)
    cfg = {"gen": sgd_conf(["gen"], "g_loss"), "disc": sgd_conf(["disc"], "d_loss", lr=0.05)}
    accum = 2
    group = build_optim_sches(
        cfg, ddp, distributed=True, accum_grad=accum, precision="fp32", ft_factor=1.0
    )
    error = None
    try:
        for step_num in range(1, 2 * accum + 1):
            window = (step_num - 1) // accum + 1
            x, t = data(1000 * window + 10 * rank + (step_num - 1) % accum, B)
            with group.accumulate(ddp, step_num):
                group.step(outside_losses(ddp, x, t), step_num)
    except RuntimeError as exc:
        error = str(exc).splitlines()[0]
    for window in range(1, 3):  # one process, the global batch of each window
        xs, ts = zip(*(data(1000 * window + 10 * r + m, B) for r in range(world)
                       for m in range(accum)), strict=True)  # fmt: skip
        losses = outside_losses(reference, torch.cat(xs), torch.cat(ts))
        gen_p, disc_p = list(reference.gen.parameters()), list(reference.disc.parameters())
        g_gen = torch.autograd.grad(losses["g_loss"], gen_p)
        g_disc = torch.autograd.grad(losses["d_loss"], disc_p)
        with torch.no_grad():
            for p, g in zip(gen_p, g_gen, strict=True):
                p -= 0.1 * g
            for p, g in zip(disc_p, g_disc, strict=True):
                p -= 0.05 * g
    mine = flat_params(model)
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    return {
        "error": error,
        "ranks_identical": bool(torch.equal(gathered[0], gathered[1])),
        "max_abs_diff_vs_reference": (mine - flat_params(reference)).abs().max().item(),
        "real_steps": {n: group[n].real_step for n in group.names},
    }


def main() -> int:
    out_dir = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    result = {
        "accumulation": scenario_accumulation(rank, world),
        "two_optim_sches": scenario_two_optim_sches(rank, world),
        "unused_parameters": scenario_unused_parameters(rank, world),
        "outside_forward": scenario_outside_forward(rank, world),
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
