"""Signature planning time: the cached path of audioflow.config.signatures against the plain
Dora-style computation (two Hydra composes per XP), in the same run.

The XPs are a grid over the shipped config: 2 model choices x 4 learning rates x 4 seeds x
4 batch sizes = 128 XPs sharing 2 group-choice sets, as a Snakefile plans them.
Both paths must give the same signatures (checked). Prints per-XP times and the speedup
(target: >= 10x; the cached path composes once per group-choice set).

Run: .venv/bin/python benchmarks/config_signatures.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import time

from audioflow.config import signatures
from audioflow.config.composition import _BASE_CACHE, compose_slow, parse_overrides
from audioflow.config.signing import _SIG_CACHE, compute_delta, sign

GROUPS = ("solver", "model", "dset", "conditioner")


def grid() -> list[list[str]]:
    plans = []
    for model, lr, seed, batch in itertools.product(
        ["encodec/tiny", "encodec/small"], [1e-4, 3e-4, 1e-3, 3e-3], [1, 2, 3, 4], [4, 8, 16, 32]
    ):
        plans.append(
            [
                "solver=compression/default",
                f"model={model}",
                f"optim.lr={lr}",
                f"seed={seed}",
                f"dataset.batch_size={batch}",
            ]
        )
    return plans


def plain_signature(overrides: list[str]) -> str:
    """What a planner without the cache does: compose the group choices, compose all."""
    parsed, _ = parse_overrides(overrides)
    group_ovs = [ov for ov in parsed if ov.key_or_group in GROUPS]
    base = compose_slow([ov.input_line for ov in group_ovs])
    cfg = compose_slow(overrides)
    return sign(compute_delta([(ov.key_or_group, ov.value()) for ov in group_ovs], base, cfg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    plans = grid()

    t0 = time.perf_counter()
    slow = [plain_signature(p) for p in plans]
    slow_s = time.perf_counter() - t0

    cold_s = warm_s = float("inf")
    for _ in range(args.repeat):
        _BASE_CACHE.clear()
        _SIG_CACHE.clear()
        t0 = time.perf_counter()
        fast = signatures(plans)
        cold_s = min(cold_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        signatures(plans)
        warm_s = min(warm_s, time.perf_counter() - t0)
    assert fast == slow, "cached and plain signatures differ"

    n = len(plans)
    print(f"XPs: {n} ({len(set(fast))} distinct signatures)")
    print(f"plain (2 Hydra composes per XP): {slow_s:.2f} s = {1e3 * slow_s / n:.1f} ms/XP")
    print(f"cached, cold (new process):      {cold_s:.2f} s = {1e3 * cold_s / n:.2f} ms/XP")
    print(f"cached, warm (same process):     {warm_s:.4f} s = {1e3 * warm_s / n:.3f} ms/XP")
    print(f"speedup cold: {slow_s / cold_s:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
