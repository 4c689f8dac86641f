"""Epoch planning: train chunks, their dependencies, and periodic stages."""

import pytest

from audioflow.workflow.epochs import chunk_end, chunk_ends, every_epochs, train_dependencies


def test_chunk_ends_cover_every_epoch_once():
    assert chunk_ends(5, 1) == [1, 2, 3, 4, 5]
    assert chunk_ends(5, 2) == [2, 4, 5]
    assert chunk_ends(4, 2) == [2, 4]
    assert chunk_ends(3, 10) == [3]


def test_chunk_end_of_each_epoch():
    assert [chunk_end(e, 5, 2) for e in range(1, 6)] == [2, 2, 4, 4, 5]
    assert [chunk_end(e, 3, 1) for e in range(1, 4)] == [1, 2, 3]


def test_train_waits_for_previous_chunk_and_valid_two_epochs_back():
    # Train E+1 needs valid E-1, not valid E: validation of E runs beside training E+1.
    assert train_dependencies(1, 5, 1) == (None, None)
    assert train_dependencies(2, 5, 1) == (1, None)
    assert train_dependencies(3, 5, 1) == (2, 1)
    assert train_dependencies(2, 5, 2) == (None, None)
    assert train_dependencies(4, 5, 2) == (2, 1)
    assert train_dependencies(5, 5, 2) == (4, 3)


def test_train_dependencies_refuse_an_epoch_inside_a_chunk():
    with pytest.raises(ValueError, match="not the end of a train job"):
        train_dependencies(3, 5, 2)
    with pytest.raises(ValueError, match="must be >= 1"):
        chunk_ends(0, 1)


def test_every_epochs_always_includes_the_last():
    assert every_epochs(10, 3) == [3, 6, 9, 10]
    assert every_epochs(4, 2) == [2, 4]
    assert every_epochs(4, 0) == [4]
    assert every_epochs(1, 5) == [1]
