"""Random number generator state: seeding, capture for checkpoints, isolated blocks.

Exact resume needs every generator a run draws from (python, numpy, torch, cuda) saved
in the checkpoint and restored before the next update. Stages other than train, and the
creation of data iterators, run in :func:`isolated` blocks seeded from (seed, stage,
epoch): they are reproducible on their own and never shift the training stream, so a
run that validates in the same process trains exactly like one that validates elsewhere.
Draws that must not depend on the number of processes (per-sample augmentation) use
:func:`sample_generator`, keyed by (seed, stage, epoch, sample index).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if torch.cuda.is_available():
        torch.manual_seed(seed)  # also queues the seeding of not-yet-initialised GPUs
    else:  # CPU only: skips torch.manual_seed's accelerator hooks (they capture stacks)
        torch.default_generator.manual_seed(seed)


def derive_seed(*parts) -> int:
    """A 63-bit seed that depends only on ``parts`` (stable across processes and runs)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def get_state() -> dict:
    """Every generator's state, in types ``torch.load(weights_only=True)`` accepts."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "mt": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_state(state: dict) -> None:
    """Restore the generators captured by :func:`get_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["mt"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def sample_generator(seed: int, *key, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded from ``(seed, *key)``, e.g. (seed, stage, epoch, sample index).

    Draws made with it depend on the key only: a sample gets the same augmentation whatever
    the number of processes and whichever process sees it.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *key))
    return gen


@contextmanager
def isolated(seed: int) -> Iterator[None]:
    """Run a block with every generator seeded from ``seed``, then put them all back."""
    saved = get_state()
    seed_all(seed)
    try:
        yield
    finally:
        set_state(saved)
