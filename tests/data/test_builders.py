"""build_audio_loaders on the shipped config files and a real (tiny) synth corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audioflow.config.errors import ConfigError
from audioflow.data.builders import build_audio_loaders, stage_options
from audioflow.data.manifest import build_manifest
from audioflow.data.synth import write_corpus

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _cfg(dset: str = "synth", **dataset):
    """The keys the builder reads, from the shipped base, solver and dset files."""
    cfg = OmegaConf.merge(
        {k: v for k, v in OmegaConf.load(CONFIG / "config.yaml").items() if k != "defaults"},
        OmegaConf.load(CONFIG / "solver" / "default.yaml"),
        OmegaConf.load(CONFIG / "dset" / "audio" / f"{dset}.yaml"),
        {"optim": {"updates_per_epoch": 3, "accum_grad": 2}, "dataset": dataset},
    )
    OmegaConf.set_struct(cfg, True)  # as composed configs are
    return cfg


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("work")
    for split, seed in (("train", 1), ("valid", 2), ("evaluate", 3)):
        folder = root / "data" / "synth" / split
        write_corpus(folder, 6, seed)
        build_manifest([folder], folder / "manifest.jsonl.gz", workers=1)
    return root


def test_loaders_for_every_stage(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    cfg = _cfg(batch_size=4, segment_duration=0.5)
    loaders = build_audio_loaders(cfg, world_size=1, rank=0)
    assert set(loaders) == {"train", "valid", "evaluate", "generate"}
    train = list(loaders["train"])
    assert len(train) == len(loaders["train"]) == 3 * 2  # updates_per_epoch * accum_grad
    assert train[0].shape == (4, 1, 8000)
    valid = list(loaders["valid"])
    assert sum(b.shape[0] for b in valid) == cfg.dataset.valid.num_samples
    # valid segments are the same at every epoch; train changes with the epoch.
    loaders["valid"].dataset.set_epoch(4)
    assert torch.equal(next(iter(loaders["valid"])), valid[0])
    loaders["train"].sampler.set_epoch(1)
    assert not torch.equal(next(iter(loaders["train"])), train[0])


def test_ranks_split_the_global_batch_and_resume(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    cfg = _cfg(batch_size=4, segment_duration=0.5, return_info=True)
    seeks = []
    for rank in range(2):
        train = build_audio_loaders(cfg, world_size=2, rank=rank)["train"]
        batches = list(train)
        assert len(batches) == 6 and batches[0][0].shape == (2, 1, 8000)
        seeks.append([i["index"] for _, infos in batches for i in infos])
        train.sampler.set_start(4)
        resumed = list(train)
        assert len(resumed) == 2 and torch.equal(resumed[0][0], batches[4][0])
    assert not set(seeks[0]) & set(seeks[1])


def test_stage_overrides(workdir):
    cfg = _cfg(batch_size=4, evaluate={"num_samples": None, "segment_duration": None})
    opts = stage_options(cfg, "evaluate")
    assert opts["num_samples"] is None and opts["segment_duration"] is None
    assert opts["shuffle"] is False and stage_options(cfg, "train")["shuffle"] is True


def test_config_errors_name_the_key(workdir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    with pytest.raises(ConfigError, match=r"datasource.train: manifest .* not found"):
        build_audio_loaders(_cfg(), 1, 0)
    monkeypatch.chdir(workdir)
    with pytest.raises(ConfigError, match="dataset.batch_size=3 .* world size 2"):
        build_audio_loaders(_cfg(batch_size=3), 2, 0)
    with pytest.raises(ConfigError, match="lower dataset.segment_duration"):
        build_audio_loaders(_cfg(segment_duration=30.0), 1, 0)


def test_example_dset_goes_through_dataset_mappings(workdir, tmp_path, monkeypatch):
    team = tmp_path / "team.yaml"
    team.write_text(
        "clusters:\n  local:\n    dataset_mappings:\n"
        f'      "^data/example/": {workdir}/data/synth/\n'
    )
    monkeypatch.setenv("AUDIOFLOW_CONFIG", str(team))
    monkeypatch.setenv("AUDIOFLOW_CLUSTER", "local")
    monkeypatch.chdir(tmp_path)
    loaders = build_audio_loaders(_cfg("example", batch_size=2, segment_duration=0.5), 1, 0)
    assert Path(loaders["train"].dataset.entries[0]["path"]).is_relative_to(workdir)


def test_composed_demo_config(workdir, monkeypatch):
    """The real composed config (Hydra, struct mode) of the demo XP builds its loaders."""
    from audioflow.config import compose

    monkeypatch.chdir(workdir)
    cfg = compose(["dset=audio/synth", "optim.updates_per_epoch=2"])
    loaders = build_audio_loaders(cfg, world_size=1, rank=0)
    accum = int(cfg.optim.accum_grad)
    assert len(list(loaders["train"])) == 2 * accum
    batch = next(iter(loaders["valid"]))
    wav = batch[0] if isinstance(batch, tuple) else batch
    assert wav.shape[1:] == (cfg.channels, round(cfg.dataset.segment_duration * cfg.sample_rate))
