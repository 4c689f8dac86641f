"""Turn an XP config into speech DataLoaders (the config reader of the speech data).

Keys read: ``datasource.<stage>`` (manifests), ``dataset.batch_size`` and
``dataset.num_workers`` with per-stage overrides in ``dataset.<stage>.*``,
``dataset.bucketing``, ``dataset.bucket_batches``, ``dataset.max_duration``,
``sample_rate``, ``seed``, ``device`` and ``optim.updates_per_epoch``/``optim.accum_grad``.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from audioflow.data.builders import STAGES, _get, _load_entries
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

    datasource = _get(cfg, "datasource")
    if datasource is None:
        raise ConfigError("datasource: missing; pick a speech dataset, e.g. dset=speech/digits")
    dataset_cfg = _get(cfg, "dataset")
    optim = _get(cfg, "optim")
    num_batches = int(_get(optim, "updates_per_epoch", 1)) * int(_get(optim, "accum_grad", 1))
    max_duration = _get(dataset_cfg, "max_duration")
    loaders = {}
    for stage in STAGES:
        manifest = _get(datasource, stage)
        if manifest is None:
            continue
        stage_cfg = _get(dataset_cfg, stage)
        batch_size = int(_get(stage_cfg, "batch_size", _get(dataset_cfg, "batch_size", 16)))
        if batch_size < world_size or batch_size % world_size:
            raise ConfigError(
                f"dataset.batch_size={batch_size} ({stage}) must be a positive multiple of the "
                f"world size {world_size}"
            )
        try:
            dataset = SpeechDataset(
                _load_entries(stage, manifest),
                int(cfg.sample_rate),
                max_duration=None if stage != "train" or max_duration is None else max_duration,
            )
        except ValueError as err:
            raise ConfigError(f"datasource.{stage} ({manifest}): {err}") from None
        train = stage == "train"
        sampler = BucketBatchSampler(
            dataset.durations,
            batch_size // world_size,
            num_batches if train else None,
            world_size,
            rank,
            seed=int(_get(cfg, "seed", 0)),
            shuffle=train,
            # generate shows its first utterances: manifest order, not the shortest ones
            bucketing=stage != "generate" and bool(_get(dataset_cfg, "bucketing", True)),
            bucket_batches=int(_get(dataset_cfg, "bucket_batches", 32)),
        )
        loaders[stage] = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=int(_get(stage_cfg, "num_workers", _get(dataset_cfg, "num_workers", 0))),
            collate_fn=collate_speech,
            pin_memory=str(_get(cfg, "device", "cpu")).startswith("cuda"),
        )
    return loaders
