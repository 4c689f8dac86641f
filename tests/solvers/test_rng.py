"""RNG state capture survives a weights_only checkpoint; isolated blocks leave no trace."""

import random

import numpy as np
import torch

from audioflow.solvers import checkpoint, rng


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_state_round_trip_through_a_weights_only_file(tmp_path):
    rng.seed_all(5)
    _draw()
    checkpoint.save({"kind": "checkpoint", "rng": rng.get_state()}, tmp_path / "c.th")
    expected = _draw()
    _draw()
    rng.set_state(checkpoint.load(tmp_path / "c.th")["rng"])
    assert _draw() == expected


def test_isolated_block_is_seeded_and_restores_the_stream():
    rng.seed_all(1)
    reference = _draw()
    rng.seed_all(1)
    with rng.isolated(rng.derive_seed(1, "valid", 3)):
        inside = _draw()
    assert _draw() == reference
    with rng.isolated(rng.derive_seed(1, "valid", 3)):
        assert _draw() == inside
    assert rng.derive_seed(1, "valid", 3) != rng.derive_seed(1, "valid", 4)
