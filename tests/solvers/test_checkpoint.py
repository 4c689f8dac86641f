"""Checkpoint files: atomic save, refusal of truncated/foreign files, fallback, keep_last."""

import logging

import pytest
import torch

from audioflow.solvers import checkpoint, history

LOG = logging.getLogger("test")


def _save(folder, name, epoch, sig="abcd1234"):
    payload = {"kind": "checkpoint", "sig": sig, "epoch": epoch, "w": torch.full((3,), epoch)}
    checkpoint.save(payload, folder / name)


def test_save_load_round_trip_leaves_no_temp_file(tmp_path):
    _save(tmp_path, "checkpoint.th", 3)
    payload = checkpoint.load(tmp_path / "checkpoint.th", sig="abcd1234", kind="checkpoint")
    assert payload["epoch"] == 3 and payload["format"] == checkpoint.FORMAT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.th"]


def test_truncated_foreign_and_other_xp_files_are_refused(tmp_path):
    _save(tmp_path, "checkpoint.th", 1)
    data = (tmp_path / "checkpoint.th").read_bytes()
    (tmp_path / "cut.th").write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match=r"cut\.th: unreadable"):
        checkpoint.load(tmp_path / "cut.th")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.th")
    with pytest.raises(checkpoint.CheckpointError, match="foreign"):
        checkpoint.load(tmp_path / "foreign.th")
    with pytest.raises(checkpoint.CheckpointError, match="belongs to XP abcd1234"):
        checkpoint.load(tmp_path / "checkpoint.th", sig="ffff0000")


def test_load_latest_falls_back_past_a_corrupt_file(tmp_path, caplog):
    _save(tmp_path, "checkpoint_1.th", 1)
    _save(tmp_path, "checkpoint_2.th", 2)
    (tmp_path / "checkpoint.th").write_bytes(b"\x80\x02garbage")
    with caplog.at_level(logging.ERROR):
        payload = checkpoint.load_latest(tmp_path, "abcd1234", LOG)
    assert payload["epoch"] == 2
    assert "checkpoint.th" in caplog.text


def test_load_latest_refuses_when_nothing_is_usable(tmp_path):
    assert checkpoint.load_latest(tmp_path, "abcd1234", LOG) is None
    (tmp_path / "checkpoint.th").write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match="delete these files"):
        checkpoint.load_latest(tmp_path, "abcd1234", LOG)


def test_keep_last_deletes_old_validated_checkpoints_only(tmp_path):
    for epoch in (1, 2, 3, 4):
        _save(tmp_path, f"checkpoint_{epoch}.th", epoch)
    for epoch in (2, 3, 4):  # epoch 1 has not been validated yet
        history.finish_stage(tmp_path, "valid", epoch, {"loss": 1.0})
    deleted = checkpoint.keep_last(tmp_path, 2, LOG)
    assert [p.name for p in deleted] == ["checkpoint_2.th"]
    assert [e for e, _ in checkpoint.epoch_checkpoints(tmp_path)] == [1, 3, 4]
    assert checkpoint.keep_last(tmp_path, 0, LOG) == []


def test_history_is_rebuilt_from_stage_markers(tmp_path):
    history.finish_stage(tmp_path, "train", 1, {"loss": 2.0})
    history.finish_stage(tmp_path, "valid", 1, {"loss": 1.5})
    history.finish_stage(tmp_path, "train", 2, {"loss": 1.0})
    rebuilt = history.rebuild_history(tmp_path)
    assert rebuilt == [
        {"epoch": 1, "train": {"loss": 2.0}, "valid": {"loss": 1.5}},
        {"epoch": 2, "train": {"loss": 1.0}},
    ]
    assert history.read_marker(tmp_path, "valid", 2) is None


def _payload(epoch, n=6):
    return {"kind": "checkpoint", "sig": "abcd1234", "epoch": epoch, "w": torch.arange(n) * 1.0}


def test_background_save_writes_the_state_as_it_was_when_called(tmp_path):
    state = {"w": torch.arange(6.0), "nested": [{"m": torch.ones(2, 3)}], "step": 7}
    state["view"] = state["w"][2:4]  # a view of the same storage stays one
    handle = checkpoint.save({"kind": "checkpoint", **state}, tmp_path / "c.th", background=True)
    state["w"].add_(100)  # the loop goes on changing the state while the file is written
    state["nested"][0]["m"].zero_()
    handle.wait()
    assert handle.done()
    saved = checkpoint.load(tmp_path / "c.th", kind="checkpoint")
    assert torch.equal(saved["w"], torch.arange(6.0)) and saved["step"] == 7
    assert torch.equal(saved["nested"][0]["m"], torch.ones(2, 3))
    saved["w"][2] = -1
    assert saved["view"][0] == -1  # shared storage, as torch.save of the original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.th"]


def test_saves_complete_in_the_order_they_were_made(tmp_path):
    path = tmp_path / "checkpoint.th"
    for epoch in range(1, 6):
        checkpoint.save(_payload(epoch, 200_000), path, background=True)
    checkpoint.save(_payload(6), path)  # waits for the background saves first
    assert checkpoint.load(path)["epoch"] == 6
    for epoch in range(7, 10):
        checkpoint.save(_payload(epoch, 200_000), path, background=True)
    checkpoint.wait_pending()
    assert checkpoint.load(path)["epoch"] == 9


def test_a_background_save_on_a_full_disk_fails_on_wait_keeping_the_old_file(small_disk):
    disk = small_disk(256)
    checkpoint.save(_payload(1), disk / "checkpoint.th")
    handle = checkpoint.save(_payload(2, 1_000_000), disk / "checkpoint.th", background=True)
    with pytest.raises(OSError, match=f"no space left on {disk}"):
        handle.wait()
    assert checkpoint.load(disk / "checkpoint.th")["epoch"] == 1
    assert sorted(p.name for p in disk.iterdir()) == ["checkpoint.th"]
    checkpoint.wait_pending()  # its error was taken by wait(); later saves work
    checkpoint.save(_payload(3), disk / "checkpoint.th")
    assert checkpoint.load(disk / "checkpoint.th")["epoch"] == 3


KILLED_SAVER = """
import sys, torch
from pathlib import Path
from audioflow.solvers import checkpoint
path, n = Path(sys.argv[1]), int(sys.argv[2])
checkpoint.save({"kind": "checkpoint", "sig": "abcd1234", "epoch": 1, "w": torch.zeros(4)}, path)
big = {"kind": "checkpoint", "sig": "abcd1234", "epoch": 2, "w": torch.ones(n)}
checkpoint.save(big, path, background=True)
print("started", flush=True)
checkpoint.wait_pending()
print("done", flush=True)
"""


def test_kill_9_during_a_background_save_leaves_the_previous_checkpoint(tmp_path, caplog):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "checkpoint.th"
    # The write must still be going when the kill lands: a larger state if it was not.
    for n in (25_000_000, 50_000_000, 100_000_000):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_SAVER, str(path), str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline() == "started\n"
        deadline, temp = time.monotonic() + 60, None
        while temp is None and proc.poll() is None and time.monotonic() < deadline:
            temps = [p for p in tmp_path.glob(".checkpoint.th.*.tmp") if p.stat().st_size]
            temp = temps[0] if temps else None
        if temp is not None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            break
        path.unlink()
    assert proc.returncode == -signal.SIGKILL and temp.exists()
    with caplog.at_level(logging.INFO):
        payload = checkpoint.load_latest(tmp_path, "abcd1234", LOG)
    assert payload["epoch"] == 1 and torch.equal(payload["w"], torch.zeros(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.th"]  # temp removed
    assert "left by a save that was killed" in caplog.text


def test_a_full_disk_during_training_is_one_line_and_leaves_no_marker(
    user_dir, small_disk, monkeypatch, capsys
):
    import os

    from audioflow import cli
    from audioflow.config import layout

    disk = small_disk(2048)
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(disk))
    # ~70k parameters + Adam: a checkpoint of ~0.8 MB, more than the space left below.
    args = ["run", "solver=my_solver", "toy.hidden=4096", "optim.epochs=1"]
    args += ["--config-dir", str(user_dir), "--stage", "train", "--epoch", "1"]
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * (free - 128 * 1024))  # what other jobs wrote
    code = cli.main(args)
    err = capsys.readouterr().err
    (folder,) = layout.xps_dir(disk).iterdir()
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"audioflow run: no space left on {folder} (writing "), err
    assert "Traceback" not in err
    assert not layout.marker_path(folder, "train", 1).exists()
    assert not list(folder.rglob("*.tmp")) and not list(folder.glob("checkpoint*.th"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_background_save_of_cuda_tensors_copies_them_to_the_host(tmp_path):
    weight = torch.arange(12.0, device="cuda").reshape(3, 4)
    state = {"w": weight, "row": weight[1], "step": torch.tensor(3, device="cuda")}
    handle = checkpoint.save({"kind": "checkpoint", **state}, tmp_path / "c.th", background=True)
    weight.mul_(0)  # the GPU state moves on at once
    handle.wait()
    saved = checkpoint.load(tmp_path / "c.th")
    assert saved["w"].device.type == "cpu"
    assert torch.equal(saved["w"], torch.arange(12.0).reshape(3, 4))
    assert torch.equal(saved["row"], torch.arange(4.0, 8.0)) and saved["step"] == 3
