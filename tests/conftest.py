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


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(kib)`` -> a folder on a file system of that size (a tmpfs, unmounted
    afterwards), for real "no space left on device" errors. Needs root (CI runs as root)."""
    import subprocess

    mounted = []

    def mount(kib: int):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)
