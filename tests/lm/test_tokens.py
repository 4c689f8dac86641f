"""Token shards: reused when nothing changed, rebuilt for a new codec, a new manifest or a
damaged shard (a real codec package and real synth audio)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import torch

from audioflow import models
from audioflow.data.tokens import INDEX, ensure_tokens, load_shards

from . import codec_helpers


def _codec():
    return models.load_codec("//reference/demo_codec")


def test_tokens_are_reused_when_nothing_changed(lm_env, corpus):
    root = lm_env / "tokens"
    first = ensure_tokens(_codec(), corpus["valid"], root)
    assert first.built and len(first.codes) == 8
    codec = _codec()
    k, card = codec.contract.n_q, codec.contract.cardinality
    assert all(c.shape[0] == k and int(c.max()) < card for c in first.codes)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.folder.iterdir()}
    again = ensure_tokens(_codec(), corpus["valid"], root)
    assert not again.built and again.folder == first.folder
    assert {p.name: p.stat().st_mtime_ns for p in again.folder.iterdir()} == stamps
    assert all(torch.equal(a, b) for a, b in zip(first.codes, again.codes))


def test_a_new_codec_is_encoded_into_a_new_cache(lm_env, corpus):
    root = lm_env / "tokens"
    old = ensure_tokens(_codec(), corpus["valid"], root)
    codec_helpers.write_codec_package(lm_env / "reference" / "demo_codec", seed=1)
    new = ensure_tokens(_codec(), corpus["valid"], root)
    assert new.built and new.folder != old.folder
    assert new.index["codec_hash"] != old.index["codec_hash"]
    assert not all(torch.equal(a, b) for a, b in zip(old.codes, new.codes))


def test_a_changed_manifest_is_encoded_again(lm_env, corpus, tmp_path):
    root = lm_env / "tokens"
    # beside the original: entry paths are relative to the manifest's folder
    manifest = Path(corpus["valid"]).with_name(f"changed_{tmp_path.name}.jsonl.gz")
    shutil.copy(corpus["valid"], manifest)
    old = ensure_tokens(_codec(), manifest, root)
    lines = gzip.decompress(manifest.read_bytes()).splitlines(keepends=True)
    manifest.write_bytes(gzip.compress(b"".join(lines[:-1])))  # one file fewer
    new = ensure_tokens(_codec(), manifest, root)
    assert new.built and new.folder != old.folder and len(new.codes) == len(old.codes) - 1


def test_a_truncated_shard_is_rebuilt_not_trained_on(lm_env, corpus):
    root = lm_env / "tokens"
    good = ensure_tokens(_codec(), corpus["valid"], root)
    shard = good.folder / good.index["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    codec = _codec()
    try:
        load_shards(good.folder, codec.content_hash, good.index["manifest_hash"])
        raise AssertionError("a truncated shard was accepted")
    except ValueError as exc:
        assert shard.name in str(exc)
    rebuilt = ensure_tokens(codec, corpus["valid"], root)
    assert rebuilt.built and (rebuilt.folder / INDEX).is_file()
    assert all(torch.equal(a, b) for a, b in zip(good.codes, rebuilt.codes))


def test_encoding_processes_give_the_codes_of_one_process_in_manifest_order(lm_env, corpus):
    from audioflow.data.manifest import read_manifest
    from audioflow.data.tokens import encode_entries

    entries = read_manifest(corpus["valid"])
    codec = _codec()
    alone = encode_entries(codec, entries)
    side_by_side = encode_entries(codec, entries, workers=2)
    assert len(side_by_side) == len(entries) == 8
    assert all(torch.equal(a, b) for a, b in zip(alone, side_by_side))
    # the files differ, so a reordering would show
    assert len({tuple(c.shape) + (int(c.sum()),) for c in alone}) > 1
