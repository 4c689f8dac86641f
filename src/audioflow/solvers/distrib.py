"""Distributed helpers: process group from torchrun's environment, DDP, metric averaging.

Everything here is a no-op in a single process, so solvers call it unconditionally.
"""

from __future__ import annotations

import os

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


def wrap(module: nn.Module, device: torch.device, find_unused: bool = False) -> nn.Module:
    """DDP-wrap a module with trainable parameters when distributed, else return it as is."""
    if not is_distributed() or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(obj):
    """The module inside a DDP wrapper (anything else is returned unchanged)."""
    return obj.module if isinstance(obj, DistributedDataParallel) else obj


def average_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Average float metrics over ranks (every rank must pass the same keys)."""
    if not is_distributed() or not metrics:
        return dict(metrics)
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    values = (values / world_size()).cpu()
    return {k: float(v) for k, v in zip(keys, values.tolist())}


def all_gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` when not distributed)."""
    if not is_distributed():
        return [obj]
    box = [None] * world_size()
    dist.all_gather_object(box, obj)
    return box


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
