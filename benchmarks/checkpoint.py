"""Checkpoint cost: how long a save blocks the training loop, and its write throughput
against the disk's own bandwidth measured in the same run.

Two states, each the payload a training checkpoint holds (model weights + Adam state):
``demo``, the demo workflow's codec (``solver=compression/debug``, SEANet encodec/tiny), and
``100m``, a ~100M-parameter model (6 Linear 4096x4096 layers: 1.2 GB with Adam's moments).
For each, alternating R times in one folder:

- ``dd``: a dd-style write of the same number of bytes (8 MiB blocks, fsync, folder fsync),
  the disk's bandwidth for this size;
- ``sync``: ``checkpoint.save(payload, path)``: the loop is blocked for all of it;
- ``copy``: a ``clone()`` of every tensor: the in-memory copy of the state, the least a save
  that lets the loop go on must cost;
- ``background``: ``checkpoint.save(payload, path, background=True)``: blocked for its
  return, then written by the background thread (``wait()`` gives the total).

Also: the steps/s of a small CPU training loop while a background save is written, against
the same loop alone (the loop shares the GIL and the cores with the writer).
Medians are reported. Targets: sync throughput >= 50 % of dd; background blocked time
close to the in-memory copy.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/checkpoint.py [--repeat 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch
from torch import nn

from audioflow import atomic
from audioflow.solvers import checkpoint

BLOCK = 8 << 20


def adam_state(model: nn.Module) -> dict:
    """The checkpoint payload of ``model`` after one Adam step (moments allocated)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    return {"kind": "checkpoint", "sig": "0badcafe", "epoch": 1, "state": state}


def demo_codec() -> nn.Module:
    from audioflow.config import compose
    from audioflow.models.builders import build_compression_model

    return build_compression_model(compose(["solver=compression/debug"]))


def model_100m() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(4096, 4096) for _ in range(6)])


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def dd_write(folder: Path, size: int) -> float:
    """Seconds to write ``size`` bytes in 8 MiB blocks, fsync the file and its folder."""
    block = memoryview(bytes(BLOCK))  # slices of a memoryview copy nothing
    path = folder / "dd.bin"
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        while left > 0:
            left -= os.write(fd, block[: min(BLOCK, left)])
        os.fsync(fd)
    finally:
        os.close(fd)
    atomic.fsync_dir(folder)
    seconds = time.perf_counter() - t0
    path.unlink()
    return seconds


def clone_state(payload: dict) -> float:
    """Seconds to clone every tensor of the payload (the in-memory copy)."""
    tensors = []

    def walk(obj):
        if isinstance(obj, torch.Tensor):
            tensors.append(obj)
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list | tuple):
            for value in obj:
                walk(value)

    walk(payload)
    t0 = time.perf_counter()
    copies = [t.clone() for t in tensors]
    seconds = time.perf_counter() - t0
    del copies
    return seconds


def loop_rate(seconds: float, busy: threading.Event | None = None) -> float:
    """Steps/s of a small MLP training loop run for ``seconds`` (or while ``busy`` is set)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 1))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x, y = torch.randn(64, 256), torch.randn(64, 1)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds if busy is None else busy.is_set():
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        steps += 1
    return steps / (time.perf_counter() - t0)


def measure(name: str, payload: dict, folder: Path, repeat: int) -> dict:
    path = folder / f"{name}.th"
    checkpoint.save(payload, path)  # warm-up; also gives the file size
    size = path.stat().st_size
    rows: dict[str, list[float]] = {"dd": [], "sync": [], "copy": [], "blocked": [], "total": []}
    for _ in range(repeat):
        rows["dd"].append(dd_write(folder, size))
        t0 = time.perf_counter()
        checkpoint.save(payload, path)
        rows["sync"].append(time.perf_counter() - t0)
        rows["copy"].append(clone_state(payload))
        t0 = time.perf_counter()
        handle = checkpoint.save(payload, path, background=True)
        rows["blocked"].append(time.perf_counter() - t0)
        handle.wait()
        rows["total"].append(time.perf_counter() - t0)
    # The training loop during a background save, against the same loop alone just before
    # and just after (the machine's load drifts).
    window = max(statistics.median(rows["total"]), 1.0)
    before = loop_rate(window)
    busy = threading.Event()
    busy.set()
    handle = checkpoint.save(payload, path, background=True)
    threading.Thread(target=lambda: (handle.wait(), busy.clear()), daemon=True).start()
    during = loop_rate(0, busy)
    alone = (before + loop_rate(window)) / 2
    rows["write"] = [total - blocked for total, blocked in zip(rows["total"], rows["blocked"])]
    med = {key: statistics.median(values) for key, values in rows.items()}
    return {"size": size, **med, "loop_during": during, "loop_alone": alone, "rows": rows}


def report(name: str, params: int, r: dict) -> None:
    mb = r["size"] / 1e6

    def line(label: str, seconds: float, extra: str = "") -> None:
        print(f"{label:<28}{seconds:8.3f} s  {extra}")

    print(f"\n## {name}: {params / 1e6:.2f}M parameters, checkpoint {mb:.1f} MB")
    line("dd write+fsync", r["dd"], f"{mb / r['dd']:.1f} MB/s (the disk)")
    line("sync save (all blocked)", r["sync"], f"{mb / r['sync']:.1f} MB/s = ")
    print(f"{'':<28}{r['dd'] / r['sync']:.0%} of dd")
    line("in-memory copy (clone)", r["copy"])
    line("background save: blocked", r["blocked"], f"{r['blocked'] / r['copy']:.2f}x the copy, ")
    print(f"{'':<28}{r['blocked'] / r['sync']:.1%} of the sync save")
    write = r["write"]  # the background thread's part
    line("background save: on disk", r["total"], f"after the call; its write {write:.3f} s,")
    print(f"{'':<28}{mb / write:.1f} MB/s = {r['dd'] / write:.0%} of dd")
    if r["total"] >= 1.0:  # shorter writes leave nothing to measure the loop against
        print(
            f"loop during a background save {r['loop_during']:.1f} steps/s, alone "
            f"{r['loop_alone']:.1f} steps/s ({r['loop_during'] / r['loop_alone']:.2f}x)"
        )
    for key, values in r["rows"].items():
        print(f"  runs {key:<8} " + ", ".join(f"{v:.3f}" for v in values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="folder to write in (a temp one)")
    parser.add_argument("--only", choices=("demo", "100m"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="af-ckpt-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        print(f"writing in {folder}; torch {torch.__version__}, {os.cpu_count()} CPUs")
        for name, build in (("demo", demo_codec), ("100m", model_100m)):
            if args.only not in (None, name):
                continue
            model = build()
            payload = adam_state(model)
            report(name, n_params(model), measure(name, payload, folder, args.repeat))
            del model, payload


if __name__ == "__main__":
    main()
