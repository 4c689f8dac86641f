"""Turn an XP config into DataLoaders: the only place of audioflow.data that reads config.

Keys read: ``datasource.<stage>`` (manifest path, through the team's dataset mappings),
``dataset.*`` with per-stage overrides in ``dataset.<stage>.*``, ``sample_rate``,
``channels``, ``seed``, ``device`` and ``optim.updates_per_epoch`` / ``optim.accum_grad``.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, DistributedSampler

from audioflow.config.layout import STAGES
from audioflow.data.dataset import AudioDataset, check_files_exist, collate
from audioflow.data.manifest import read_manifest
from audioflow.data.samplers import TrainSampler

# Keys a stage may override under dataset.<stage>, with their defaults.
_STAGE_KEYS = {
    "batch_size": 16,
    "num_workers": 0,
    "segment_duration": 1.0,
    "min_segment_ratio": 0.5,
    "sample_on_duration": True,
    "sample_on_weight": True,
    "num_samples": None,
    "return_info": False,
    "shuffle": None,  # None: True for train, False for the other stages
}


def _get(node: Any, key: str, default: Any = None) -> Any:
    if node is None:
        return default
    try:
        value = node.get(key, default)
    except AttributeError:
        return default
    return default if value is None and default is not None else value


def stage_options(cfg: Any, stage: str) -> dict:
    """``dataset.*`` for one stage: ``dataset.<stage>.<key>`` overrides ``dataset.<key>``."""
    dataset, opts = _get(cfg, "dataset"), {}
    stage_node = _get(dataset, stage)
    for key, default in _STAGE_KEYS.items():
        # Presence, not truthiness: `dataset.evaluate.segment_duration: null` means whole files.
        value = default
        if key != "num_samples" and dataset is not None and key in dataset:
            value = dataset[key]
        if stage_node is not None and key in stage_node:
            value = stage_node[key]
        opts[key] = value
    if opts["shuffle"] is None:
        opts["shuffle"] = stage == "train"
    return opts


def per_rank_batch_size(batch_size: int, world_size: int, stage: str) -> int:
    """Each rank's share of the global ``dataset.batch_size`` of ``stage``.

    Raises:
        ConfigError: the batch does not split evenly over the ranks.
    """
    from audioflow.config.errors import ConfigError

    if batch_size < world_size or batch_size % world_size:
        raise ConfigError(
            f"dataset.batch_size={batch_size} ({stage}) must be a positive multiple of the "
            f"world size {world_size}"
        )
    return batch_size // world_size


def load_stage_manifest(stage: str, manifest: str) -> list[dict]:
    """The entries of the manifest ``datasource.<stage>`` names (team path mappings applied).

    Raises:
        ConfigError: the manifest is missing or unreadable (the message names the key).
    """
    from audioflow.config.errors import ConfigError
    from audioflow.config.paths import resolve_path

    path = resolve_path(str(manifest))
    if not path.is_file():
        raise ConfigError(
            f"datasource.{stage}: manifest {path} not found; build it with "
            f"`audioflow manifest AUDIO_FOLDER -o {path}` (or `audioflow synth` for the demo)"
        )
    try:
        entries = read_manifest(path)
        check_files_exist(entries)  # here, not at the first batch of a DataLoader worker
        return entries
    except (ValueError, OSError, EOFError) as err:
        raise ConfigError(f"datasource.{stage}: {err}") from None


def build_audio_loaders(cfg: Any, world_size: int = 1, rank: int = 0) -> dict[str, DataLoader]:
    """DataLoaders for every stage that ``cfg.datasource`` names.

    Train yields exactly ``updates_per_epoch * accum_grad`` batches of
    ``batch_size // world_size`` items per rank and epoch; its ``sampler`` is a
    ``TrainSampler`` (``set_epoch``, ``set_start``, ``state_dict``). The other stages use
    fixed segments (identical every epoch), split across ranks by a DistributedSampler.

    Args:
        cfg: the composed XP config.
        world_size: number of ranks.
        rank: this rank.

    Returns:
        ``{stage: DataLoader}``; batches are ``wav`` (B, C, T) or ``(wav, infos)``.

    Raises:
        ConfigError: a missing/broken manifest, a batch size that does not split across
            ranks, or a dataset with no usable file (message names the key).
    """
    from audioflow.config.errors import ConfigError

    datasource = _get(cfg, "datasource")
    if datasource is None:
        raise ConfigError("datasource: missing; pick a dataset config, e.g. dset=audio/synth")
    optim = _get(cfg, "optim")
    num_batches = int(_get(optim, "updates_per_epoch", 1)) * int(_get(optim, "accum_grad", 1))
    pin = str(_get(cfg, "device", "cpu")).startswith("cuda")
    loaders = {}
    for stage in STAGES:
        manifest = _get(datasource, stage)
        if manifest is None:
            continue
        opts = stage_options(cfg, stage)
        batch_size = int(opts["batch_size"])
        per_rank = per_rank_batch_size(batch_size, world_size, stage)
        num_samples = opts["num_samples"]
        if stage == "train" and num_samples is None:
            num_samples = num_batches * batch_size
        try:
            dataset = AudioDataset(
                load_stage_manifest(stage, manifest),
                sample_rate=int(cfg.sample_rate),
                channels=int(cfg.channels),
                segment_duration=opts["segment_duration"],
                num_samples=num_samples,
                shuffle=bool(opts["shuffle"]),
                sample_on_duration=bool(opts["sample_on_duration"]),
                sample_on_weight=bool(opts["sample_on_weight"]),
                min_segment_ratio=float(opts["min_segment_ratio"]),
                return_info=bool(opts["return_info"]),
                seed=int(_get(cfg, "seed", 0)),
            )
        except ValueError as err:
            raise ConfigError(f"datasource.{stage} ({manifest}): {err}") from None
        if stage == "train":
            sampler = TrainSampler(len(dataset), per_rank, num_batches, world_size, rank)
        elif world_size > 1:
            sampler = DistributedSampler(dataset, world_size, rank, shuffle=False)
        else:
            sampler = None
        loaders[stage] = DataLoader(
            dataset,
            batch_size=per_rank,
            sampler=sampler,
            num_workers=int(opts["num_workers"]),
            collate_fn=collate,
            pin_memory=pin,
            drop_last=False,
        )
    return loaders
