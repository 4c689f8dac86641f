"""AudioDataset on real files: determinism, weighting, padding, metadata, DataLoader workers."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, DistributedSampler

from audioflow.data.dataset import AudioDataset, collate
from audioflow.data.manifest import build_manifest, read_manifest


@pytest.fixture(scope="module")
def entries(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "manifest.jsonl.gz"
    build_manifest([corpus], out, workers=1, check_tail=True)
    return read_manifest(out)


def _ds(entries, **kw):
    opts = dict(sample_rate=16000, channels=1, segment_duration=0.25, num_samples=12, seed=3)
    opts.update(kw)
    return AudioDataset(entries, **opts)


def test_items_depend_only_on_seed_epoch_index(entries):
    a, b = _ds(entries), _ds(entries)
    b.set_epoch(1)
    b.set_epoch(0)
    for i in reversed(range(6)):  # order of access must not matter
        assert torch.equal(a[i], b[i])
    assert a[0].shape == (1, 4000)
    a.set_epoch(5)
    assert torch.equal(a[2], b[(5, 2)])  # (epoch, index) pairs as the TrainSampler yields
    draws0 = [b.draw(0, i) for i in range(12)]
    assert draws0 != [b.draw(1, i) for i in range(12)]
    assert draws0 != [_ds(entries, seed=4).draw(0, i) for i in range(12)]


def test_fixed_stage_is_identical_every_epoch(entries):
    valid = _ds(entries, shuffle=False)
    first = [valid[i] for i in range(len(valid))]
    valid.set_epoch(7)
    assert all(torch.equal(x, valid[i]) for i, x in enumerate(first))
    assert len({valid.draw(0, i)[0] for i in range(12)}) > 1  # still spread over files


def _fake(durations, weights=None):
    return [
        {"path": f"/x/{i}.wav", "duration": d, "sample_rate": 16000, "channels": 1}
        | ({"weight": weights[i]} if weights else {})
        for i, d in enumerate(durations)
    ]


@pytest.mark.parametrize(
    "durations, weights, on_duration, on_weight, expected",
    [
        ([1.0, 3.0], None, True, True, 0.75),
        ([1.0, 3.0], None, False, True, 0.5),
        ([2.0, 2.0], [1.0, 3.0], True, True, 0.75),
        ([2.0, 2.0], [1.0, 3.0], True, False, 0.5),
        ([1.0, 1.0], [0.0, 1.0], False, True, 1.0),
    ],
)
def test_sampling_weights(durations, weights, on_duration, on_weight, expected):
    ds = AudioDataset(
        _fake(durations, weights),
        sample_rate=16000,
        channels=1,
        segment_duration=0.5,
        num_samples=4000,
        sample_on_duration=on_duration,
        sample_on_weight=on_weight,
    )
    share = np.mean([ds.draw(0, i)[0] for i in range(4000)])
    assert share == pytest.approx(expected, abs=0.03)


def test_bad_weights_and_too_short_files_are_errors():
    with pytest.raises(ValueError, match="negative 'weight'"):
        AudioDataset(_fake([1.0], [-1.0]), sample_rate=16000, channels=1)
    for bad in ("heavy", float("nan"), float("inf"), True):
        with pytest.raises(
            ValueError, match=f"0.wav: 'weight' must be a finite number, got {bad!r}"
        ):
            AudioDataset(_fake([1.0, 1.0], [bad, 1.0]), sample_rate=16000, channels=1)
    with pytest.raises(ValueError, match="lower dataset.segment_duration"):
        AudioDataset(_fake([0.2]), sample_rate=16000, channels=1, segment_duration=1.0)


def test_short_files_padded_or_dropped(tmp_path):
    sf.write(tmp_path / "short.wav", np.full(9600, 0.5, dtype=np.float32), 16000)  # 0.6 s
    sf.write(tmp_path / "tiny.wav", np.full(3200, 0.5, dtype=np.float32), 16000)  # 0.2 s
    build_manifest([tmp_path], tmp_path / "m.jsonl.gz", workers=1)
    ds = AudioDataset.from_manifest(
        tmp_path / "m.jsonl.gz",
        sample_rate=16000,
        channels=2,
        segment_duration=1.0,
        min_segment_ratio=0.5,
        return_info=True,
    )
    assert [e["path"].rsplit("/", 1)[1] for e in ds.entries] == ["short.wav"]
    wav, info = ds[0]
    assert wav.shape == (2, 16000)
    assert info["n_frames"] == 9600 and info["total_frames"] == 16000
    assert torch.all(wav[:, :9600] == 0.5) and torch.all(wav[:, 9600:] == 0)


def test_info_and_collate_carry_metadata(entries):
    ds = AudioDataset(
        entries, sample_rate=8000, channels=2, segment_duration=None, return_info=True
    )  # whole files, one per entry, in manifest order
    batch = collate([ds[i] for i in range(len(ds))])
    wav, infos = batch
    longest = max(round(e["duration"] * 8000) for e in entries)
    assert wav.shape == (len(entries), 2, longest)
    by_name = {i["path"].rsplit("/", 1)[1]: i for i in infos}
    assert by_name["pcm16.wav"]["text"] == "hello world"
    assert by_name["vorbis.ogg"]["labels"] == ["tone"]
    assert by_name["float.wav"]["orig_sample_rate"] == 48000
    assert all(i["sample_rate"] == 8000 and i["channels"] == 2 for i in infos)
    assert by_name["quad.wav"]["orig_channels"] == 4


def test_dataloader_workers_give_the_same_batches(entries):
    ds = _ds(entries, num_samples=16, return_info=True)
    ds.set_epoch(2)
    plain = list(DataLoader(ds, batch_size=4, collate_fn=collate))
    workers = list(DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=2))
    assert len(plain) == len(workers) == 4
    for (wa, ia), (wb, ib) in zip(plain, workers, strict=True):
        assert torch.equal(wa, wb)
        assert [i["seek_time"] for i in ia] == [i["seek_time"] for i in ib]


def test_distributed_sampler_splits_fixed_items(entries):
    ds = _ds(entries, shuffle=False, num_samples=10)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=False)
        for batch in DataLoader(ds, batch_size=5, sampler=sampler, collate_fn=collate):
            seen.extend(batch)
    reference = [ds[i] for i in range(10)]
    assert len(seen) == 10
    matched = sum(any(torch.equal(s, r) for r in reference) for s in seen)
    assert matched == 10
