"""on_rank_zero on 2 real processes (gloo): rank 0's failure reaches the other rank at once."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from audioflow.atomic import DiskFullError
from audioflow.solvers import distrib


def _worker(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    folder = Path(out)
    try:
        distrib.on_rank_zero(lambda: (folder / "written").write_text(str(rank)))
        seen = {"written": (folder / "written").read_text()}

        def fail():
            raise DiskFullError(folder / "checkpoint.th", OSError(errno.ENOSPC, "no space"))

        try:
            distrib.on_rank_zero(fail)
        except Exception as exc:  # noqa: BLE001 - what each rank got is the result
            seen.update(error=type(exc).__name__, message=str(exc))
            seen.update(code=getattr(exc, "exit_code", None))
        (folder / f"rank{rank}.json").write_text(json.dumps(seen))
        if rank == 0:  # alive: rank 1 stops on what it was told, not on a closed connection
            deadline = time.monotonic() + 20
            while not (folder / "rank1.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        dist.destroy_process_group()


def test_a_failure_on_rank_0_fails_every_rank_with_its_status(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert zero["written"] == one["written"] == "0"  # ran on rank 0 only, seen by both
    assert (zero["error"], zero["code"]) == ("DiskFullError", 2)
    assert zero["message"].startswith(f"no space left on {tmp_path} (writing checkpoint.th)")
    assert (one["error"], one["code"]) == ("PeerError", 2)
    assert one["message"] == f"rank 0 failed: {zero['message']}"
