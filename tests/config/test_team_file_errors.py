"""A team file of the wrong shape: one ConfigError line naming the file and the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioflow.config import ConfigError, cluster_config

BIN = Path(sys.executable).parent


def _team(tmp_path: Path, monkeypatch, text: str) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(text)
    monkeypatch.setenv("AUDIOFLOW_CONFIG", str(path))
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("clusters:\n  local: [1, 2]\n", "clusters.local"),
        ("clusters:\n  local: out\n", "clusters.local"),
        ("clusters:\n  local: {}\n  kubernetes: 3\n", "clusters.kubernetes"),
        ("clusters:\n  local:\n    kubernetes: [a]\n", "clusters.local.kubernetes"),
        ("clusters:\n  local:\n    dataset_mappings: [a]\n", "clusters.local.dataset_mappings"),
        ("clusters:\n  local:\n    xp_root: [a]\n", "clusters.local.xp_root"),
    ],
)
def test_entry_of_the_wrong_type_is_a_config_error(tmp_path, monkeypatch, text, key):
    path = _team(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError) as info:
        cluster_config()
    (line,) = info.value.problems
    assert line.startswith(f"{path}: {key} must be")


def test_empty_entry_still_means_the_defaults(tmp_path, monkeypatch):
    _team(tmp_path, monkeypatch, "clusters:\n  local:\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDIOFLOW_XP_DIR")
    assert cluster_config()["xp_root"] == tmp_path / "outputs"


def test_ls_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text("clusters:\n  local: [1, 2]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIOFLOW_")}
    env["AUDIOFLOW_CONFIG"] = str(path)
    done = subprocess.run(
        [str(BIN / "audioflow"), "ls"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"audioflow ls: {path}: clusters.local must be a mapping of settings "
        "(xp_root: ..., reference_dir: ...), not list; fix it"
    ]
