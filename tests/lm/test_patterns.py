"""Codebook interleaving: delay and parallel patterns."""

from __future__ import annotations

import pytest
import torch

from audioflow.models.patterns import build_pattern


@pytest.mark.parametrize("name", ["delay", "parallel"])
def test_interleave_then_deinterleave_is_the_identity(name):
    pattern = build_pattern(name, 4)
    codes = torch.randint(0, 64, (3, 4, 17))
    seq = pattern.interleave(codes, special=64)
    assert seq.shape == (3, 4, 17 + pattern.max_delay)
    assert torch.equal(pattern.deinterleave(seq), codes)


def test_delay_pattern_shifts_codebook_k_by_k_steps():
    pattern = build_pattern("delay", 3)
    codes = torch.arange(3 * 5).reshape(1, 3, 5)
    seq = pattern.interleave(codes, special=-1)
    for k in range(3):
        assert seq[0, k, :k].eq(-1).all()
        assert torch.equal(seq[0, k, k : k + 5], codes[0, k])
        assert seq[0, k, k + 5 :].eq(-1).all()
    # the mask marks exactly the positions that hold a code
    assert torch.equal(pattern.valid_mask(5, seq.shape[-1])[0], seq[0] != -1)


def test_valid_mask_follows_each_items_length():
    pattern = build_pattern("delay", 2)
    mask = pattern.valid_mask(torch.tensor([3, 1]), 4)
    assert mask.sum(dim=(1, 2)).tolist() == [6, 2]


def test_unknown_pattern_is_a_clear_error():
    with pytest.raises(ValueError, match="pattern='zigzag'.*delay, parallel"):
        build_pattern("zigzag", 4)
