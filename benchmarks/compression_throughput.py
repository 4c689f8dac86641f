"""Training throughput of the compression task: samples/s, eager vs torch.compile.

One training step is what CompressionSolver runs on the single-optimizer path: codec
forward (encoder, RVQ with EMA updates, decoder), reconstruction losses, backward, clip,
Adam step. Batches are random 1-s segments (the data path has its own benchmarks), so the
figure is the model's. The compiled variant compiles the encoder and decoder (the RVQ's
data-dependent codebook updates stay eager) and is timed in the same run, after warm-up.
The model config is chosen like an XP: ``--overrides solver=compression/debug``.

  .venv/bin/python benchmarks/compression_throughput.py                       # CPU, debug
  .venv/bin/python benchmarks/compression_throughput.py --device cuda \\
      --overrides solver=compression/default --precision bf16                  # GPU
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from omegaconf import OmegaConf


def build(overrides: list[str], device: str):
    from audioflow.config import compose
    from audioflow.losses.codec import ReconstructionLoss
    from audioflow.models.builders import build_compression_model

    cfg = compose(overrides)
    model = build_compression_model(cfg).to(device).train()
    weights = OmegaConf.to_container(cfg.losses, resolve=True)
    for key in ("adv", "feat"):  # the discriminator is not part of this measure
        weights.pop(key, None)
    loss_fn = ReconstructionLoss(
        int(cfg.sample_rate),
        weights,
        OmegaConf.to_container(cfg.mel_loss, resolve=True),
        OmegaConf.to_container(cfg.mrstft_loss, resolve=True),
    ).to(device)
    return cfg, model, loss_fn


def time_steps(model, loss_fn, batch, steps: int, warmup: int, precision: str) -> list[float]:
    """Seconds per training step, after ``warmup`` untimed steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    device_type = batch.device.type
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        ctx = torch.autocast(device_type, dtype) if dtype else contextlib.nullcontext()
        with ctx:
            out = model(batch)
            loss, _ = loss_fn(out.x.float(), batch, out.penalty)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if device_type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overrides", nargs="*", default=["solver=compression/debug"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: dataset.batch_size")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    cfg, model, loss_fn = build(args.overrides, args.device)
    batch_size = args.batch_size or int(cfg.dataset.batch_size)
    length = int(float(cfg.dataset.segment_duration) * int(cfg.sample_rate))
    batch = 0.1 * torch.randn(batch_size, int(cfg.channels), length, device=args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model {n_params / 1e6:.2f} M parameters, batch {batch_size} x {length} samples, "
        f"{args.device}, {args.precision}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )

    eager = time_steps(model, loss_fn, batch, args.steps, args.warmup, args.precision)
    eager_med = statistics.median(eager)
    print(f"eager:    {eager_med * 1e3:8.1f} ms/step  {batch_size / eager_med:8.1f} samples/s")
    if args.no_compile:
        return
    t0 = time.perf_counter()
    model.encoder = torch.compile(model.encoder)
    model.decoder = torch.compile(model.decoder)
    try:
        compiled = time_steps(model, loss_fn, batch, args.steps, args.warmup, args.precision)
    except Exception as exc:  # the inductor needs a C++ compiler; report instead of failing
        print(f"compiled: unavailable ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        return
    setup = time.perf_counter() - t0 - sum(compiled)
    comp_med = statistics.median(compiled)
    print(
        f"compiled: {comp_med * 1e3:8.1f} ms/step  {batch_size / comp_med:8.1f} samples/s  "
        f"(compile + warm-up {setup:.1f} s)"
    )
    print(f"speedup compiled / eager: {eager_med / comp_med:.2f}x")


if __name__ == "__main__":
    main()
