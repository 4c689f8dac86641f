"""Shared test setup: one torch thread per process keeps 2-core runs predictable, and
caches (the manifest scan state) go to a folder of the test session, not ~/.cache."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _session_cache_dir(tmp_path_factory):
    # os.environ, not monkeypatch: subprocesses (CLI, snakemake, torchrun) must see it too.
    before = os.environ.get("AUDIOFLOW_CACHE_DIR")
    os.environ["AUDIOFLOW_CACHE_DIR"] = str(tmp_path_factory.mktemp("audioflow-cache"))
    yield
    if before is None:
        os.environ.pop("AUDIOFLOW_CACHE_DIR", None)
    else:
        os.environ["AUDIOFLOW_CACHE_DIR"] = before
