"""The codec reference API: load_codec for a path, //reference/NAME and //sig/SIG, and the
contract checks a consumer runs (one line naming the mismatch).

A tiny real XP (one epoch of two updates on four synthetic files, a few seconds) is
trained once for the module and exported by the real `audioflow export`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from solvers.tiny_codec import train_tiny_codec

from audioflow.cli import main
from audioflow.models import load_codec
from audioflow.models.codec_ref import CodecContract, CodecContractError, LoadedCodec
from audioflow.models.package import PackageError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(signature, XP root, package folder, reference dir) of a tiny exported XP."""
    root = tmp_path_factory.mktemp("codec_ref")
    xp = train_tiny_codec(root)
    reference = root / "reference"
    reference.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
        assert main(["export", xp.sig, "-o", str(reference / "tiny_codec")]) == 0
    return xp.sig, root / "xps", reference / "tiny_codec", reference


@pytest.fixture
def env(trained, monkeypatch):
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(trained[1]))
    monkeypatch.setenv("AUDIOFLOW_REFERENCE_DIR", str(trained[3]))
    return trained


def _check_roundtrip(codec: LoadedCodec) -> None:
    c = codec.contract
    wav = 0.3 * torch.sin(torch.arange(4000) / 7.0)[None, None].repeat(2, c.channels, 1)
    codes = codec.encode(wav)
    hop = round(c.sample_rate / c.frame_rate)
    assert codes.dtype == torch.long
    assert codes.shape == (2, c.n_q, -(-4000 // hop))
    assert int(codes.min()) >= 0 and int(codes.max()) < c.cardinality
    out = codec.decode(codes)
    assert out.shape == (2, c.channels, codes.shape[-1] * hop)
    assert not out.requires_grad
    # the first k codebooks decode on their own (a lower bandwidth)
    assert codec.decode(codes[:, :1]).shape == out.shape


def test_load_codec_from_a_path(env):
    sig, _, package, _ = env
    codec = load_codec(str(package))
    meta = json.loads((package / "metadata.json").read_text())
    assert codec.contract == CodecContract.from_dict(meta["contract"])
    assert codec.contract.n_q == meta["n_q"] and codec.contract.cardinality == meta["cardinality"]
    assert codec.lineage["signature"] == sig
    assert set(codec.lineage) == {"signature", "config", "manifests", "code_version"}
    assert codec.lineage["config"]["solver"] == "compression"
    assert len(codec.content_hash) == 64 and codec.source == str(package)
    assert not codec.model.training
    _check_roundtrip(codec)


def test_load_codec_from_reference_and_sig_agree(env):
    sig, _, package, _ = env
    by_ref = load_codec("//reference/tiny_codec")
    by_sig = load_codec(f"//sig/{sig}")
    assert by_ref.source == "//reference/tiny_codec" and by_sig.source == f"//sig/{sig}"
    assert by_ref.contract == by_sig.contract
    assert by_sig.lineage["signature"] == sig
    wav = torch.randn(1, by_ref.contract.channels, 3200) * 0.1
    assert torch.equal(by_ref.encode(wav), by_sig.encode(wav))
    _check_roundtrip(by_sig)


def test_content_hash_follows_the_package_files(env, tmp_path):
    package = env[2]
    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    assert load_codec(str(copy)).content_hash == load_codec(str(package)).content_hash
    meta = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**meta, "note": "edited"}))
    assert load_codec(str(copy)).content_hash != load_codec(str(package)).content_hash


@pytest.mark.parametrize(
    "ask, expected",
    [
        ({"n_q": 99}, "has {n_q} codebooks; n_q=99 asks for more: choose n_q in [1, {n_q}]"),
        ({"card": 3}, "has {card} codes per codebook; card=3 does not match"),
        ({"sample_rate": 44100}, "runs at {sr} Hz; sample_rate=44100 does not match"),
        ({"channels": 2}, "has 1 channel(s); channels=2 does not match"),
    ],
)
def test_contract_mismatch_is_one_line(env, ask, expected):
    codec = load_codec("//reference/tiny_codec")
    c = codec.contract
    with pytest.raises(CodecContractError) as info:
        codec.require(**ask)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("codec //reference/tiny_codec ")
    assert expected.format(n_q=c.n_q, card=c.cardinality, sr=c.sample_rate) in message


def test_require_accepts_what_the_codec_serves(env):
    codec = load_codec("//reference/tiny_codec")
    c = codec.contract
    codec.require(n_q=1, card=c.cardinality, sample_rate=c.sample_rate, channels=c.channels)
    codec.require(n_q=c.n_q)


def test_decode_refuses_codes_out_of_the_contract(env):
    codec = load_codec("//reference/tiny_codec")
    c = codec.contract
    with pytest.raises(CodecContractError, match=f"has codes 0..{c.cardinality - 1}"):
        codec.decode(torch.full((1, 1, 4), c.cardinality))
    with pytest.raises(CodecContractError, match=f"1 <= K <= {c.n_q}"):
        codec.decode(torch.zeros(1, c.n_q + 1, 4, dtype=torch.long))
    with pytest.raises(CodecContractError, match="integer codes"):
        codec.decode(torch.zeros(1, 1, 4))
    with pytest.raises(CodecContractError, match=r"encodes \(B, 1, T\) audio"):
        codec.encode(torch.zeros(1, 2, 100))


def test_a_declared_contract_that_the_weights_contradict_is_refused(env, tmp_path):
    copy = tmp_path / "edited"
    shutil.copytree(env[2], copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["contract"]["cardinality"] = 4096
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(PackageError, match="declares cardinality=4096 vs "):
        load_codec(str(copy))


def test_missing_references_are_named(env, tmp_path):
    from audioflow.config.errors import ConfigError

    with pytest.raises(ConfigError, match="//reference/nope: no published codec at "):
        load_codec("//reference/nope")
    with pytest.raises(ConfigError, match="no XP 'deadbeef'"):
        load_codec("//sig/deadbeef")
    with pytest.raises(PackageError, match="not a codec package"):
        load_codec(str(Path(tmp_path)))
