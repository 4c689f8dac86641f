"""Token shards: a manifest's audio encoded once by a codec, for the tasks that train on codes.

The cache of a (codec, manifest) pair lives in
``<xp_root>/tokens/<codec hash[:16]>-<manifest hash[:16]>/``, keyed by the codec package's
content hash and the manifest file's sha256: a new codec or new data is a new folder, and
nothing else is ever re-encoded. The folder holds ``shard_<n>.pt`` files (the codes of
``SHARD_ITEMS`` manifest entries each, ``torch.load(weights_only=True)``) and
``index.json`` (keys, contract, and each shard's size and sha256). It is written into a
temporary sibling and renamed into place, and checked whole on load: a truncated or
edited shard, or an index that names other keys, makes the cache be rebuilt, never
trained on.

``python -m audioflow.data.tokens --codec REF --manifest M [--record OUT] [-j N]`` builds (or
verifies) one cache; the workflow's ``tokens`` rule runs it, and ``audioflow run`` calls
:func:`ensure_tokens` itself when nothing built the cache before.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from audioflow import atomic
from audioflow.models.lineage import file_sha256  # the one file hash of the project

CACHE_VERSION = 1
INDEX = "index.json"
SHARD_ITEMS = 256
TOKENS_DIR = "tokens"  # under <xp_root>

log = logging.getLogger(__name__)


class TokenCacheError(ValueError):
    """A cache folder that cannot be used as it is (the message says why)."""


@dataclass(frozen=True)
class TokenShards:
    """The codes of every entry of a manifest.

    Attributes:
        folder: the cache folder.
        codes: one (K, F_i) long tensor per manifest entry, in manifest order.
        index: the folder's index.json.
        built: whether this call encoded the audio (False: reused).
    """

    folder: Path
    codes: list[torch.Tensor]
    index: dict
    built: bool


def cache_root() -> Path:
    """``<xp_root>/tokens`` of the selected team and cluster."""
    from audioflow.config.teams import xp_root

    return xp_root() / TOKENS_DIR


def cache_folder(root: str | os.PathLike, codec_hash: str, manifest_hash: str) -> Path:
    """The cache folder of a (codec, manifest) pair."""
    return Path(root) / f"{codec_hash[:16]}-{manifest_hash[:16]}"


def _shard_name(n: int) -> str:
    return f"shard_{n:05d}.pt"


def load_shards(folder: Path, codec_hash: str, manifest_hash: str) -> TokenShards:
    """Read and verify a cache folder.

    Raises:
        TokenCacheError: missing or unreadable index, other keys or version, a shard whose
            size or sha256 differs from the index, or an item count that does not match.
    """
    path = folder / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise TokenCacheError(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise TokenCacheError(f"{path}: unreadable ({exc})") from None
    wanted = {"version": CACHE_VERSION, "codec_hash": codec_hash, "manifest_hash": manifest_hash}
    for key, value in wanted.items():
        if index.get(key) != value:
            raise TokenCacheError(f"{path}: {key} is {index.get(key)!r}, expected {value!r}")
    codes: list[torch.Tensor] = []
    for shard in index["shards"]:
        file = folder / shard["file"]
        size = file.stat().st_size if file.is_file() else None
        if size != shard["bytes"] or file_sha256(file) != shard["sha256"]:
            raise TokenCacheError(
                f"{file}: {'missing' if size is None else f'{size} bytes'}, not the "
                f"{shard['bytes']} bytes of sha256 {shard['sha256'][:12]} the index lists"
            )
        data = torch.load(file, map_location="cpu", weights_only=True)
        flat, lengths = data["codes"].long(), data["lengths"].tolist()
        codes.extend(torch.split(flat, lengths, dim=-1))
    if len(codes) != index["items"]:
        raise TokenCacheError(f"{path}: lists {index['items']} items, the shards hold {len(codes)}")
    return TokenShards(folder, codes, index, built=False)


class _Encoded(torch.utils.data.Dataset):
    """Entry i -> its (K, F) codes: the unit of work of the encoding processes."""

    def __init__(self, codec, entries: list[dict]):
        self.codec, self.entries = codec, entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> torch.Tensor:
        from audioflow.data.audio import read_segment

        contract, entry = self.codec.contract, self.entries[i]
        wav = read_segment(
            entry["path"], 0.0, None, contract.sample_rate, contract.channels, entry["sample_rate"]
        )  # (C, T)
        return self.codec.encode(wav[None])[0].cpu().long()  # (K, F)


def encode_entries(codec, entries: list[dict], workers: int = 0) -> list[torch.Tensor]:
    """Encode whole files with a loaded codec at its sample rate and channels.

    Args:
        workers: processes encoding files side by side (one torch thread each; 0 or 1: this
            process, with its threads). On a CPU, files of a few seconds keep two threads
            of one process only ~1.3x as busy as one, so N processes encode faster.

    Returns:
        One (K, F) long tensor per entry, in manifest order.
    """
    dataset = _Encoded(codec, entries)
    if workers <= 1 or len(entries) < 2:
        return [dataset[i] for i in range(len(dataset))]
    # a DataLoader's workers are the processes (one thread each), its order the manifest's
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=min(int(workers), len(entries))
    )
    return list(loader)


def build_shards(
    codec, manifest: str | os.PathLike, root: str | os.PathLike, workers: int = 0
) -> Path:
    """Encode every entry of ``manifest`` and write its cache folder atomically.

    An existing folder of the same key (one that failed verification) is replaced;
    ``workers``: see :func:`encode_entries`.

    Returns:
        The cache folder.
    """
    from audioflow.data.manifest import read_manifest

    manifest = Path(manifest)
    manifest_hash = file_sha256(manifest)
    folder = cache_folder(root, codec.content_hash, manifest_hash)
    entries = read_manifest(manifest)
    codes = encode_entries(codec, entries, workers)
    dtype = torch.int16 if codec.contract.cardinality <= 2**15 else torch.int32
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_folder_beside(folder)
    try:
        shards = []
        for n, start in enumerate(range(0, len(codes), SHARD_ITEMS)):
            part = codes[start : start + SHARD_ITEMS]
            name = _shard_name(n)
            payload = {
                "codes": torch.cat(part, dim=-1).to(dtype),  # (K, sum F)
                "lengths": torch.tensor([c.shape[-1] for c in part], dtype=torch.long),
            }
            torch.save(payload, tmp / name)
            shards.append(
                {
                    "file": name,
                    "items": len(part),
                    "bytes": (tmp / name).stat().st_size,
                    "sha256": file_sha256(tmp / name),
                }
            )
        contract = codec.contract
        index = {
            "version": CACHE_VERSION,
            "codec_hash": codec.content_hash,
            "codec_source": str(codec.source),
            "codec_signature": (codec.lineage or {}).get("signature"),
            "manifest": str(manifest),
            "manifest_hash": manifest_hash,
            "items": len(codes),
            "frames": int(sum(c.shape[-1] for c in codes)),
            "n_q": contract.n_q,
            "cardinality": contract.cardinality,
            "frame_rate": contract.frame_rate,
            "sample_rate": contract.sample_rate,
            "shards": shards,
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        if folder.exists():  # a cache that failed verification: replaced as a whole
            stale = atomic.temp_beside(folder)
            os.rename(folder, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def ensure_tokens(
    codec,
    manifest: str | os.PathLike,
    root: str | os.PathLike | None = None,
    workers: int = 0,
) -> TokenShards:
    """The verified token shards of ``manifest``, encoding them only when needed.

    Args:
        codec: a loaded codec (``audioflow.models.load_codec``).
        manifest: the manifest file (already resolved to this cluster).
        root: the cache root; default ``<xp_root>/tokens``.
        workers: processes that encode (see :func:`encode_entries`).

    Returns:
        The shards (``built`` says whether the audio was encoded now).
    """
    root = cache_root() if root is None else Path(root)
    manifest_hash = file_sha256(manifest)
    folder = cache_folder(root, codec.content_hash, manifest_hash)
    if folder.exists():
        try:
            return load_shards(folder, codec.content_hash, manifest_hash)
        except TokenCacheError as exc:
            log.warning("token cache %s is not usable (%s); encoding it again", folder, exc)
    log.info("encoding %s with codec %s into %s", manifest, codec.source, folder)
    build_shards(codec, manifest, root, workers)
    shards = load_shards(folder, codec.content_hash, manifest_hash)
    return TokenShards(shards.folder, shards.codes, shards.index, built=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audioflow.data.tokens", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--codec", required=True, help="//reference/NAME, //sig/SIG or a path")
    parser.add_argument("--manifest", required=True, help="manifest file to encode")
    parser.add_argument("--record", type=Path, help="JSON written last: the cache's index")
    parser.add_argument(
        "-j", "--workers", type=int, default=0, help="processes that encode (0 or 1: this one)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from audioflow.config.errors import ConfigError
    from audioflow.config.paths import resolve_path
    from audioflow.models import load_codec

    try:
        manifest = resolve_path(args.manifest)
        if not manifest.is_file():
            raise ConfigError(f"--manifest {args.manifest}: no such file")
        codec = load_codec(args.codec)
        shards = ensure_tokens(codec, manifest, workers=args.workers)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"audioflow tokens: {exc}", file=sys.stderr)
        return 2
    state = "encoded" if shards.built else "reused"
    print(f"{state} {shards.index['items']} items of {manifest} in {shards.folder}")
    if args.record is not None:
        record = {**shards.index, "folder": str(shards.folder)}
        args.record.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(args.record, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    from audioflow.quick_exit import exit_now

    exit_now(main())
