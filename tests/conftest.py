"""Shared test setup: one torch thread per process keeps 2-core runs predictable."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
