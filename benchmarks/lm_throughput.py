"""Training throughput of the token LM: tokens/s, eager vs torch.compile, in the same run.

One training step is what LMSolver runs: the condition prefix (label conditioner with CFG
dropout), the delay-pattern interleaving, the transformer forward over K summed codebook
embeddings, per-codebook cross-entropy, backward, clip, Adam. Batches are random codes
(the token cache has its own tests), so the figure is the model's. A token is one code of
one codebook: a step of B items of F frames over K codebooks trains B * K * F tokens.
The contract (n_q, card, frame rate) is the codec's when ``--codec`` loads, else the flags'.

  .venv/bin/python benchmarks/lm_throughput.py                                  # CPU, debug
  .venv/bin/python benchmarks/lm_throughput.py --device cuda --overrides solver=lm/default
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def build(overrides: list[str], n_q: int, card: int, device: str, frame_rate: float):
    """(config, model, labels, n_q, frames per item) of the LM the overrides describe."""
    from audioflow.config import compose
    from audioflow.models.conditioners import LabelConditioner
    from audioflow.models.lm import TokenLM
    from audioflow.models.patterns import build_pattern

    cfg = compose(overrides)
    arch = dict(cfg.transformer_lm)
    labels = ["chirp", "noise", "speech", "tone"]
    conditioner = LabelConditioner("class", labels, int(arch["dim"]), dropout=0.2)
    if cfg.codebooks.n_q is not None:  # the LM's codebooks: the first n_q of the codec's
        n_q = min(n_q, int(cfg.codebooks.n_q))
    pattern = build_pattern(str(cfg.codebooks.pattern), n_q)
    frames = round(float(cfg.dataset.segment_duration) * frame_rate)
    if arch.get("max_steps") is None:  # sized as the solver sizes it: the prefix, then a batch
        arch["max_steps"] = 1 + pattern.sequence_length(frames)
    model = TokenLM(pattern, card, conditioner=conditioner, **arch).to(device).train()
    return cfg, model, labels, n_q, frames


def time_steps(model, codes, frames, infos, steps: int, warmup: int) -> list[float]:
    """Seconds per training step, after ``warmup`` untimed steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        inputs, targets, valid = model.prepare(codes, frames)
        nll, count = model.token_nll(model(inputs, infos), targets, valid)
        loss = nll.sum() / count.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if codes.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overrides", nargs="*", default=["solver=lm/debug"])
    parser.add_argument("--codec", default="//reference/demo_codec")
    parser.add_argument("--n-q", type=int, default=4, help="when --codec does not load")
    parser.add_argument("--card", type=int, default=1024, help="when --codec does not load")
    parser.add_argument("--frame-rate", type=float, default=50.0, help="idem")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: dataset.batch_size")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    n_q, card, frame_rate, source = args.n_q, args.card, args.frame_rate, "flags"
    try:
        from audioflow.models import load_codec

        contract = load_codec(args.codec).contract
        n_q, card, frame_rate = contract.n_q, contract.cardinality, contract.frame_rate
        source = args.codec
    except Exception as exc:  # no published codec here: the flags' contract
        print(f"codec {args.codec} not loaded ({str(exc).splitlines()[0]}); using the flags")
    torch.manual_seed(0)
    cfg, model, labels, n_q, frames = build(args.overrides, n_q, card, args.device, frame_rate)
    batch = args.batch_size or int(cfg.dataset.batch_size)
    codes = torch.randint(0, card, (batch, n_q, frames), device=args.device)
    lengths = torch.full((batch,), frames, device=args.device)
    infos = [{"class": labels[i % len(labels)]} for i in range(batch)]
    tokens = batch * n_q * frames
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model {n_params / 1e6:.2f} M parameters; contract ({source}) n_q={n_q}, card={card}, "
        f"{frame_rate:g} frames/s; batch {batch} x {frames} frames = {tokens} tokens/step; "
        f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    eager = statistics.median(time_steps(model, codes, lengths, infos, args.steps, args.warmup))
    print(f"eager:    {eager * 1e3:8.1f} ms/step  {tokens / eager:10.0f} tokens/s")
    if args.no_compile:
        return
    t0 = time.perf_counter()
    model.transformer = torch.compile(model.transformer)
    try:
        compiled = time_steps(model, codes, lengths, infos, args.steps, args.warmup)
    except Exception as exc:  # the inductor needs a C++ compiler; report instead of failing
        print(f"compiled: unavailable ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        return
    setup = time.perf_counter() - t0 - sum(compiled)
    comp = statistics.median(compiled)
    print(
        f"compiled: {comp * 1e3:8.1f} ms/step  {tokens / comp:10.0f} tokens/s  "
        f"(compile + warm-up {setup:.1f} s)"
    )
    print(f"speedup compiled / eager: {eager / comp:.2f}x")


if __name__ == "__main__":
    main()
