"""Turn an XP config into speech DataLoaders (the config reader of the speech data).

Keys read: ``datasource.<stage>`` (manifests), ``dataset.batch_size`` and
``dataset.num_workers`` with per-stage overrides in ``dataset.<stage>.*``,
``dataset.bucketing``, ``dataset.bucket_batches``, ``dataset.max_duration``,
``sample_rate``, ``seed``, ``device`` and ``optim.updates_per_epoch``/``optim.accum_grad``.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from audioflow.data.builders import (
    STAGES,
    load_stage_manifest,
    per_rank_batch_size,
    stage_options,
)
from audioflow.data.samplers import BucketBatchSampler
from audioflow.data.speech import SpeechDataset, collate_speech


def build_speech_loaders(cfg: Any, world_size: int = 1, rank: int = 0) -> dict[str, DataLoader]:
    """DataLoaders of whole utterances for every stage ``cfg.datasource`` names.

    Train yields ``updates_per_epoch * accum_grad`` length-bucketed batches of
    ``batch_size // world_size`` utterances per rank and epoch; the other stages one
    pass, sorted by length, split over the ranks.

    Returns:
        ``{stage: DataLoader}`` of ``collate_speech`` batches.

    Raises:
        ConfigError: a missing/broken manifest, a manifest without transcripts, or a batch
            size that does not split over the ranks (the message names the key).
    """
    from audioflow.config.errors import ConfigError

    datasource = OmegaConf.select(cfg, "datasource")
    if datasource is None:
        raise ConfigError("datasource: missing; pick a speech dataset, e.g. dset=speech/digits")
    num_batches = int(cfg.optim.updates_per_epoch) * int(cfg.optim.accum_grad)
    max_duration = OmegaConf.select(cfg, "dataset.max_duration")
    loaders = {}
    for stage in STAGES:
        manifest = datasource.get(stage)
        if manifest is None:
            continue
        opts = stage_options(cfg, stage)
        train = stage == "train"
        try:
            dataset = SpeechDataset(
                load_stage_manifest(stage, manifest),
                int(cfg.sample_rate),
                max_duration=max_duration if train else None,
            )
        except ValueError as err:
            raise ConfigError(f"datasource.{stage} ({manifest}): {err}") from None
        sampler = BucketBatchSampler(
            dataset.durations,
            per_rank_batch_size(int(opts["batch_size"]), world_size, stage),
            num_batches if train else None,
            world_size,
            rank,
            seed=int(OmegaConf.select(cfg, "seed", default=0)),
            shuffle=train,
            # generate shows its first utterances: manifest order, not the shortest ones
            bucketing=stage != "generate"
            and bool(OmegaConf.select(cfg, "dataset.bucketing", default=True)),
            bucket_batches=int(OmegaConf.select(cfg, "dataset.bucket_batches", default=32)),
        )
        loaders[stage] = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=int(opts["num_workers"]),
            collate_fn=collate_speech,
            pin_memory=str(cfg.get("device", "cpu")).startswith("cuda"),
        )
    return loaders
