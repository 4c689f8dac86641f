"""Which token caches an XP's training waits for in the workflow (``workflow/rules/tokens.smk``).

An XP that trains on codec tokens names its codec in ``compression_model_checkpoint``; when
that is a published reference (``//reference/NAME``), its train jobs wait for the token
record of each manifest it reads, ``<tokens_dir>/refs/NAME/<manifest path>.json``, which
the ``tokens`` rule writes after encoding (or verifying) the manifest's token shards.
"""

from __future__ import annotations

from collections.abc import Sequence

REFERENCE_PREFIX = "//reference/"
MANIFEST_SUFFIX = ".jsonl.gz"

_REFERENCES: dict[tuple, str | None] = {}


def codec_reference(overrides: Sequence[str], config_dir: str | None = None) -> str | None:
    """NAME of the ``//reference/NAME`` codec an XP trains on, or None (not a token XP, or a
    codec given as ``//sig/SIG`` or a path, which the workflow does not build).

    Raises:
        ConfigError: the overrides do not compose.
    """
    key = (tuple(overrides), config_dir)
    if key not in _REFERENCES:
        from audioflow.config import compose

        cfg = compose(list(overrides), config_dir)
        ref = str(cfg.get("compression_model_checkpoint") or "")
        name = ref[len(REFERENCE_PREFIX) :] if ref.startswith(REFERENCE_PREFIX) else None
        _REFERENCES[key] = name
    return _REFERENCES[key]


def token_records(
    overrides: Sequence[str], manifests: Sequence[str], tokens_dir: str, config_dir=None
) -> list[str]:
    """The token records the train jobs of an XP wait for (none for an XP without tokens)."""
    name = codec_reference(overrides, config_dir)
    if name is None:
        return []
    return [
        f"{tokens_dir}/refs/{name}/{manifest[: -len(MANIFEST_SUFFIX)]}.json"
        for manifest in manifests
        if manifest.endswith(MANIFEST_SUFFIX)
    ]
