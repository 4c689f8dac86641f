"""Fixtures of the data tests: real audio files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from .audio_files import make_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A folder with every format in FORMATS (one in a sub-folder), sidecars and BROKEN files."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))
