"""Teams and clusters: selection by environment, path overrides, //reference, mappings."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioflow.config import ConfigError, cluster_config, resolve_path, xp_root
from audioflow.config.teams import BUILTIN_CONFIG_DIR, cluster_name

TEAM_YAML = """\
# Test team.
clusters:
  local:
    xp_root: out
    reference_dir: {local_ref}
    dataset_mappings:
      "^data/": /local/data/
  kubernetes:
    xp_root: /mnt/out
    reference_dir: {kube_ref}
    dataset_mappings:
      "^data/": /mnt/data/
      "\\\\.flac$": .wav
    kubernetes:
      namespace: speech
"""


@pytest.fixture
def team(tmp_path, monkeypatch) -> dict:
    refs = {"local_ref": tmp_path / "ref_local", "kube_ref": tmp_path / "ref_kube"}
    for ref in refs.values():
        ref.mkdir()
    path = tmp_path / "team.yaml"
    path.write_text(TEAM_YAML.format(**refs))
    monkeypatch.setenv("AUDIOFLOW_CONFIG", str(path))
    monkeypatch.delenv("AUDIOFLOW_XP_DIR")
    return refs


def test_cluster_detection(monkeypatch):
    assert cluster_name() == "local"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert cluster_name() == "kubernetes"
    monkeypatch.setenv("AUDIOFLOW_CLUSTER", "local")
    assert cluster_name() == "local"


def test_reference_resolves_per_cluster(team, monkeypatch):
    assert resolve_path("//reference/codec_v1") == team["local_ref"] / "codec_v1"
    monkeypatch.setenv("AUDIOFLOW_CLUSTER", "kubernetes")
    assert resolve_path("//reference/codec_v1") == team["kube_ref"] / "codec_v1"
    assert resolve_path("//reference") == team["kube_ref"]


def test_dataset_mappings_apply_in_order(team, monkeypatch):
    assert resolve_path("data/synth/a.flac") == Path("/local/data/synth/a.flac")
    monkeypatch.setenv("AUDIOFLOW_CLUSTER", "kubernetes")
    assert resolve_path("data/synth/a.flac") == Path("/mnt/data/synth/a.wav")
    assert resolve_path("other/a.txt") == Path("other/a.txt")


def test_missing_reference_dir_is_clear(team, monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOFLOW_REFERENCE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"nowhere .*does not exist; .*AUDIOFLOW_REFERENCE_DIR"):
        resolve_path("//reference/x")


def test_env_overrides_paths_relative_to_cwd(team, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert xp_root() == tmp_path / "out"
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", "mine")
    monkeypatch.setenv("AUDIOFLOW_REFERENCE_DIR", "refs")
    entry = cluster_config()
    assert entry["xp_root"] == tmp_path / "mine" and entry["reference_dir"] == tmp_path / "refs"


def test_kubernetes_entry_has_every_key(team, monkeypatch):
    monkeypatch.setenv("AUDIOFLOW_CLUSTER", "kubernetes")
    kube = cluster_config()["kubernetes"]
    assert kube["namespace"] == "speech" and kube["tolerations"] == []
    assert set(kube) >= {"image", "service_account", "pvc", "mount_path", "node_selector"}
    assert set(kube) >= {"shm_size", "secret_env"}


def test_unknown_cluster_and_team(team, monkeypatch):
    monkeypatch.setenv("AUDIOFLOW_CLUSTER", "slurm")
    with pytest.raises(ConfigError, match="cluster 'slurm' is not in .*known: kubernetes, local"):
        cluster_config()
    monkeypatch.delenv("AUDIOFLOW_CONFIG")
    monkeypatch.setenv("AUDIOFLOW_TEAM", "nosuchteam")
    with pytest.raises(ConfigError, match="AUDIOFLOW_TEAM=nosuchteam: .*known teams: default"):
        cluster_config()


def test_shipped_teams_load(monkeypatch):
    for path in sorted((BUILTIN_CONFIG_DIR / "teams").glob("*.yaml")):
        monkeypatch.setenv("AUDIOFLOW_TEAM", path.stem)
        for cluster in ("local", "kubernetes"):
            monkeypatch.setenv("AUDIOFLOW_CLUSTER", cluster)
            entry = cluster_config()
            assert entry["xp_root"].is_absolute() and entry["team"] == path.stem
