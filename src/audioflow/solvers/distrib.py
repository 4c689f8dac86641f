"""Distributed helpers: process group from torchrun's environment, DDP, metric reduction.

Everything here is a no-op in a single process, so solvers call it unconditionally.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def world_size() -> int:
    """Number of processes of the run (1 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """Global rank of this process (0 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    """True when more than one process takes part."""
    return world_size() > 1


def init(device: str) -> torch.device:
    """Join the process group torchrun describes in the environment and pick this rank's device.

    gloo on CPU, NCCL on CUDA; under torchrun each process uses ``cuda:<LOCAL_RANK>``.

    Args:
        device: ``cpu`` or ``cuda`` (from ``cfg.device``).

    Returns:
        The device this process computes on.

    Raises:
        RuntimeError: ``device`` is cuda but no GPU is visible.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda but no CUDA GPU is visible; run with device=cpu")
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if target.type == "cuda" else "gloo"
        kwargs = {"device_id": target} if target.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return target


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


class PeerError(RuntimeError):
    """Another rank failed at a step that all ranks take together; that rank reports it.

    Attributes:
        exit_code: the exit status that rank's error gives (every rank exits with it).
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def on_rank_zero(fn: Callable[[], object]) -> None:
    """Call ``fn`` on rank 0 only; every rank returns once it is done, or every rank fails.

    A collective (every rank calls it) that takes the place of a barrier after rank 0's
    writes: a failure (a full disk) that rank 0 alone saw would leave the other ranks
    waiting for it at their next collective, forever on NCCL or on other nodes.

    Raises:
        On rank 0, whatever ``fn`` raised; on the others, :class:`PeerError` with its
        message and exit status (``exit_code`` of the error, else 1).
    """
    if not is_distributed():
        fn()
        return
    error, outcome = None, [None]
    if rank() == 0:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - raised below, once every rank knows
            error = exc
            outcome = [(f"rank 0 failed: {exc}", int(getattr(exc, "exit_code", 1)))]
    dist.broadcast_object_list(outcome, src=0)
    if error is not None:
        raise error
    if outcome[0] is not None:
        raise PeerError(*outcome[0])


def wrap(module: nn.Module, device: torch.device, find_unused: bool = False) -> nn.Module:
    """DDP-wrap a module with trainable parameters when distributed, else return it as is."""
    if not is_distributed() or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def reduce_metrics(
    metrics: dict[str, float], weight: float = 1.0, reductions: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Reduce a stage's metrics over ranks; every rank must pass the same keys.

    Args:
        metrics: this rank's values.
        weight: what this rank's means weigh (the items it saw); equal weights by default.
        reductions: metric name -> ``"mean"`` (weighted by ``weight``, the default) or
            ``"sum"`` (counts such as files written).

    Returns:
        The run's values, the same on every rank.

    Raises:
        ValueError: a reduction other than mean or sum.
    """
    reductions = dict(reductions or {})
    unknown = sorted({v for v in reductions.values()} - {"mean", "sum"})
    if unknown:
        raise ValueError(f"metric_reductions: {unknown[0]!r} is not 'mean' or 'sum'")
    if not is_distributed() or not metrics:
        return dict(metrics)
    keys = sorted(metrics)
    summed = [reductions.get(k) == "sum" for k in keys]
    values = [float(metrics[k]) * (1.0 if s else weight) for k, s in zip(keys, summed)]
    values = torch.tensor([*values, float(weight)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    values = values.cpu().tolist()
    total = values[-1]
    return {k: v if s else v / total for k, v, s in zip(keys, values, summed)}


def all_gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` when not distributed).

    A generate stage gathers what each rank produced this way, so rank 0 can list it all.
    """
    if not is_distributed():
        return [obj]
    box = [None] * world_size()
    dist.all_gather_object(box, obj)
    return box
