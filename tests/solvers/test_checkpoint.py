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
