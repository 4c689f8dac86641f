"""A solver's history list: entries in epoch order, markers added, a lost train marker."""

from audioflow.config import layout
from audioflow.solvers import history


def test_entries_are_created_in_epoch_order_and_markers_fill_them(tmp_path):
    entries = [{"epoch": 3, "train": {"loss": 1.0}}]
    history.entry(entries, 1)["train"] = {"loss": 2.0}
    assert [e["epoch"] for e in entries] == [1, 3]
    assert history.entry(entries, 3) is entries[1]
    history.finish_stage(tmp_path, "valid", 3, {"loss": 0.5})
    history.add_markers(entries, tmp_path, 3)
    assert entries[1] == {"epoch": 3, "train": {"loss": 1.0}, "valid": {"loss": 0.5}}


def test_a_missing_train_marker_is_written_from_the_history_by_the_writer_only(tmp_path):
    entries = [{"epoch": 1, "train": {"loss": 1.0}}]
    path = layout.marker_path(tmp_path, "train", 1)
    assert history.train_marker(tmp_path, entries, 1, write=False) == {"loss": 1.0}
    assert not path.exists()
    assert history.train_marker(tmp_path, entries, 1, write=True) == {"loss": 1.0}
    assert path.exists()
    entries[0]["train"] = {"loss": 9.0}  # the marker on disk wins once it exists
    assert history.train_marker(tmp_path, entries, 1, write=True) == {"loss": 1.0}
