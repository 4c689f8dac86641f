"""A kill between an epoch's checkpoint and its train marker: the resumed run writes it."""

import json

import pytest

from audioflow.solvers import checkpoint, history


class Killed(Exception):
    """Stands for the process dying right after the end-of-epoch checkpoint."""


def _kill_before_train_marker(monkeypatch, epoch):
    real = history.finish_stage

    def finish_stage(folder, stage, e, metrics):
        if (stage, e) == ("train", epoch):
            raise Killed
        real(folder, stage, e, metrics)

    monkeypatch.setattr(history, "finish_stage", finish_stage)


@pytest.mark.parametrize("epochs", [1, 2])
def test_resumed_run_writes_the_lost_train_marker(make_solver, monkeypatch, epochs):
    with monkeypatch.context() as patch:
        _kill_before_train_marker(patch, 1)
        with pytest.raises(Killed):
            make_solver(f"optim.epochs={epochs}").run()
    solver = make_solver(f"optim.epochs={epochs}")
    saved = checkpoint.load(solver.folder / checkpoint.LATEST, sig=solver.xp.sig)
    trained_epochs = [h["epoch"] for h in saved["state"]["history"] if "train" in h]
    assert trained_epochs == [1] and saved["state"]["loop"]["micro"] == 0  # it made it
    marker = history.marker_path(solver.folder, "train", 1)
    assert not marker.exists()
    trained = saved["state"]["history"][0]["train"]
    solver.run()  # epochs=1: nothing left to train, only the marker to write
    assert json.loads(marker.read_text()) == trained
    hist = json.loads((solver.folder / "history.json").read_text())
    assert [h["epoch"] for h in hist] == list(range(1, epochs + 1))
    assert hist[0]["train"] == trained and "valid" in hist[0]
    assert all("train" in h for h in hist)
