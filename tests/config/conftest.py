"""Fixtures for the config tests: a small config folder of their own and a clean env.

The tests use their own config groups so that they do not change when the shipped
defaults do; the shipped files are checked by test_shipped.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

CONFIG_YAML = """\
# Test config: the defaults list and global keys.
defaults:
  - _self_
  - arch: small
  - data: clean

device: cpu
seed: 1
num_threads: 1
label: base
flag: true
continue_from: null
dataset:
  batch_size: 4
  num_workers: 0
logging:
  level: INFO
optim:
  lr: 0.1
  epochs: 2
  adam:
    betas: [0.9, 0.99]
  ema: {use: false, decay: 0.99}
xp:
  exclude: [device, num_threads, logging.*, dataset.num_workers, xp.*]
"""

GROUPS = {
    "arch/small.yaml": "# Test arch.\ndim: 8\nlayers: 2\n",
    "arch/large.yaml": "# Test arch.\ndim: 64\nlayers: 8\n",
    "arch/deep/narrow.yaml": "# Test arch, nested option.\ndim: 4\nlayers: 16\n",
    "data/clean.yaml": "# @package _global_\n# Test data.\nsamples: 10\n",
    "data/noisy.yaml": "# @package _global_\n# Test data.\nsamples: 20\nsnr: 5.0\n",
}


def write_config(root: Path, config_yaml: str = CONFIG_YAML, groups: dict | None = None) -> Path:
    """Write a config folder (config.yaml + group files) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(config_yaml)
    for rel, text in (GROUPS if groups is None else groups).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    """A fresh test config folder."""
    return write_config(tmp_path / "conf")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path: Path) -> Path:
    """No AUDIOFLOW_* settings from the caller's shell (but the session's cache folder);
    XPs go to a temp root."""
    import os

    for name in list(os.environ):
        if name == "AUDIOFLOW_CACHE_DIR":
            continue
        if name.startswith("AUDIOFLOW_") or name == "KUBERNETES_SERVICE_HOST":
            monkeypatch.delenv(name)
    root = tmp_path / "xproot"
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(root))
    return root
