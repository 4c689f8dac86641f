"""Codebooks stay identical across processes that quantize different data (gloo, 2 ranks)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from audioflow.models.quantizer import ResidualVectorQuantizer


def _worker(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(100 + rank)  # different data and different local RNG on each rank
        rvq = ResidualVectorQuantizer(
            dimension=4, n_q=2, bins=16, q_dropout=True, decay=0.5, threshold_ema_dead_code=1.0
        ).train()
        for step in range(8):
            shift = 50.0 if step >= 3 else 0.0  # the data moves: dead codes get replaced
            rvq(torch.randn(2, 4, 32) + shift + rank, frame_rate=50)
        torch.save(rvq.state_dict(), f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


def test_codebooks_are_synchronised_across_ranks(tmp_path):
    out = tmp_path / "state"
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    a = torch.load(f"{out}.0", weights_only=True)
    b = torch.load(f"{out}.1", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the data moved to about 50: codes were replaced there, identically on both ranks
    embed = a["layers.0.codebook.embed"]
    assert (embed.mean(dim=1) > 25).sum() >= 8
