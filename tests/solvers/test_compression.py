"""The compression solver on a real synthetic corpus: a shortened demo that must learn,
its generate outputs, and the export -> codec round trip."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from audioflow.cli import main
from audioflow.config.xp import set_current_xp
from audioflow.data.manifest import build_manifest
from audioflow.data.synth import write_corpus
from audioflow.solvers import checkpoint

SPLITS = {"train": (24, 1), "valid": (8, 2), "evaluate": (8, 3)}


def make_corpus(root: Path) -> list[str]:
    """Write the corpus under ``root`` and return the datasource overrides that use it."""
    for split, (n, seed) in SPLITS.items():
        write_corpus(root / split, n, seed)
        build_manifest([root / split], root / split / "manifest.jsonl.gz", workers=1)
    sources = {"train": "train", "valid": "valid", "evaluate": "evaluate", "generate": "evaluate"}
    return [f"datasource.{k}={root / v / 'manifest.jsonl.gz'}" for k, v in sources.items()]


def make_solver(overrides: list[str]):
    """The CompressionSolver of the XP ``overrides`` define, registered as current XP."""
    from audioflow.config import get_xp
    from audioflow.solvers.registry import get_solver_class

    xp = get_xp(overrides)
    set_current_xp(xp)
    return get_solver_class(str(xp.cfg.solver))(xp.cfg)


# The demo config, shortened: 2 epochs of 30 updates on 24 files (about 40 s on 2 cores).
SHORT_DEMO = [
    "solver=compression/debug",
    "optim.epochs=2",
    "optim.updates_per_epoch=30",
    "dataset.valid.num_samples=16",
    "dataset.evaluate.num_samples=16",
    "logging.log_tensorboard=false",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run the shortened demo once for the module; yields (solver, corpus overrides, root)."""
    root = tmp_path_factory.mktemp("compression")
    sources = make_corpus(root / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
        solver = make_solver([*SHORT_DEMO, *sources])
        solver.run()
        yield solver, sources, root
    set_current_xp(None)


def test_short_demo_learns_the_waveform(demo):
    solver, _, _ = demo
    history = json.loads((solver.folder / "history.json").read_text())
    # 60 updates: the waveform's shape comes first (valid SI-SNR); the mel distance, which
    # rewards silence where the original is silent, improves later (benchmarks/RESULTS.md)
    first, last = history[0]["valid"], history[-1]["valid"]
    assert last["sisnr"] > first["sisnr"] + 1.0  # dB
    evaluate = history[-1]["evaluate"]
    assert all(math.isfinite(v) for v in evaluate.values())
    # 8 codebooks of 1024 codes at 50 frames/s, and one entry per lower bandwidth
    assert evaluate["bitrate_kbps"] == pytest.approx(4.0)
    assert evaluate["bitrate_kbps_q1"] == pytest.approx(0.5)
    best = json.loads((solver.folder / "best.json").read_text())
    assert best["metric"] == "mel_distance"


def test_generate_writes_audio_spectrograms_and_a_page(demo):
    solver, _, _ = demo
    folder = solver.folder / "samples" / "epoch_2"
    wavs = sorted(folder.glob("*.wav"))
    pngs = sorted(folder.glob("*.png"))
    # debug: 2 files x (original + 1 codebook + all 8 codebooks + Opus at 6 kbps, the
    # nearest bitrate libopus reaches to 0.5 and 4 kbps)
    with_opus = shutil.which("opusenc") is not None
    assert len(wavs) == len(pngs) == 2 * (3 + with_opus)
    for wav in wavs:
        info = sf.info(wav)
        assert info.samplerate == 16000 and info.channels == 1 and info.frames == 16000
        data, _ = sf.read(wav)
        assert abs(data).max() > 0.01  # not silence
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        from matplotlib.image import imread

        assert imread(png).ndim == 3
    page = (folder / "index.html").read_text()
    for path in [*wavs, *pngs]:
        assert f'"{path.name}"' in page
    assert "0.50 kbps (1 codebooks)" in page and "original" in page
    assert page.count(".flac @ ") == 2  # rows named after their source files
    assert 'preload="metadata"' in page and solver.xp.sig in page
    assert ("Opus 6 kbps" in page) == with_opus
    for wav in wavs:  # the rendered clips are audible ones, not silence
        data, _ = sf.read(wav)
        if "_original" in wav.name:
            assert (abs(data) > 10 ** (-50 / 20)).mean() > 0.3


@pytest.fixture(scope="module")
def package(demo):
    """The demo XP exported by a real `audioflow export` process."""
    solver, _, root = demo
    env = dict(os.environ, AUDIOFLOW_XP_DIR=str(root / "xps"), OMP_NUM_THREADS="1")
    folder = root / "pkg"
    out = subprocess.run(
        [sys.executable, "-m", "audioflow.cli", "export", solver.xp.sig, "-o", str(folder)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return folder


def test_export_writes_weights_config_and_metadata(demo, package):
    solver = demo[0]
    meta = json.loads((package / "metadata.json").read_text())
    assert meta["signature"] == solver.xp.sig
    assert all(len(m["sha256"]) == 64 for m in meta["manifests"].values())
    assert meta["code_version"]["audioflow"] and "sisnr" in meta["metrics"]
    assert meta["best"]["metric"] == "mel_distance"
    weights = torch.load(package / "model.th", weights_only=True)
    assert weights and all(torch.is_tensor(v) for v in weights.values())
    assert (package / "config.yaml").read_text().count("solver: compression") == 1
    # a second export to the same folder is refused, leaving the package as it was
    assert main(["export", solver.xp.sig, "-o", str(package)]) == 1


def test_export_round_trip_matches_the_solver_reconstruction(demo, package, tmp_path):
    solver, _, root = demo
    source = next((root / "data" / "evaluate").glob("*.flac"))
    codes, decoded = tmp_path / "codes.th", tmp_path / "decoded.wav"
    assert main(["codec", "encode", str(source), "-o", str(codes), "--model", str(package)]) == 0
    assert main(["codec", "decode", str(codes), "-o", str(decoded), "--model", str(package)]) == 0

    # the solver's own reconstruction of the same file, with its best state
    best = checkpoint.load(solver.folder / "best.th", kind="best")
    codec = solver.codec
    codec.load_state_dict(best["state"]["model"])
    codec.eval()
    data, _ = sf.read(source, dtype="float32", always_2d=True)
    x = torch.from_numpy(data.T.copy())[None]
    with torch.no_grad():
        expected = codec(x).x[0, 0].clamp(-1, 1)
    got, sr = sf.read(decoded, dtype="float32")
    assert sr == 16000 and got.shape == expected.shape
    # equal up to the 16-bit rounding of the WAV file
    assert torch.allclose(torch.from_numpy(got), expected, atol=2 / 32768)


def test_codec_decode_names_an_unknown_output_extension(demo, package, tmp_path, capsys):
    source = next((demo[2] / "data" / "evaluate").glob("*.flac"))
    codes = tmp_path / "codes.th"
    assert main(["codec", "encode", str(source), "-o", str(codes), "--model", str(package)]) == 0
    capsys.readouterr()
    out = tmp_path / "decoded.xyz"
    assert main(["codec", "decode", str(codes), "-o", str(out), "--model", str(package)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no audio format for '.xyz'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.th"]


def test_codec_refuses_codes_of_another_model(package, tmp_path, capsys):
    codes = tmp_path / "bad.th"
    torch.save({"format": "audioflow-codes-v1", "signature": "00000000"}, codes)
    out = tmp_path / "x.wav"
    assert main(["codec", "decode", str(codes), "-o", str(out), "--model", str(package)]) == 1
    assert "encoded by model 00000000" in capsys.readouterr().err
    assert not out.exists()


def test_codec_names_a_missing_package(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, [0.0] * 1600, 16000)
    missing = tmp_path / "nope"
    assert (
        main(["codec", "encode", str(wav), "-o", str(tmp_path / "c.th"), "--model", str(missing)])
        == 1
    )
    assert f"{missing}: not a codec package" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo_config_improves_evaluate_metrics(tmp_path, monkeypatch):
    """`audioflow run solver=compression/debug` as the demo runs it (about a minute)."""
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xps"))
    sources = make_corpus(tmp_path / "data")
    try:
        solver = make_solver(["solver=compression/debug", *sources])
        solver.run()
    finally:
        set_current_xp(None)
    first, last = solver.history[0]["valid"], solver.history[-1]["valid"]
    assert last["sisnr"] > first["sisnr"] + 2.0
    # the contract a token LM builds on: a real codec's frame rate and bitrate
    assert solver.codec.frame_rate <= 75 and solver.codec.bandwidths()[-1] <= 6.0


def test_an_exported_package_seeds_a_new_xp(demo, package):
    solver, sources, root = demo
    weights = torch.load(package / "model.th", weights_only=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
        try:
            seeded = make_solver([*SHORT_DEMO, *sources, f"continue_from={package}"])
            assert not seeded.restore()  # no checkpoint of its own: starts from the package
        finally:
            set_current_xp(None)
    state = seeded.codec.state_dict()
    assert seeded.xp.sig != solver.xp.sig
    assert all(torch.equal(state[k], v) for k, v in weights.items())


def test_codec_finds_a_published_package_under_reference(package, tmp_path, monkeypatch):
    import shutil

    reference = tmp_path / "reference"
    shutil.copytree(package, reference / "demo_codec")
    monkeypatch.setenv("AUDIOFLOW_REFERENCE_DIR", str(reference))
    wav = tmp_path / "a.wav"
    sf.write(wav, 0.1 * torch.randn(3200).numpy(), 16000)
    codes = tmp_path / "a.th"
    assert (
        main(["codec", "encode", str(wav), "-o", str(codes), "--model", "//reference/demo_codec"])
        == 0
    )
    out = tmp_path / "b.wav"
    assert (
        main(["codec", "decode", str(codes), "-o", str(out), "--model", "//reference/demo_codec"])
        == 0
    )
    assert sf.info(out).frames == 3200


def test_export_of_an_unknown_xp_is_a_config_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xps"))
    assert main(["export", "0badc0de", "-o", str(tmp_path / "pkg")]) == 2
    assert "no XP '0badc0de'" in capsys.readouterr().err
    assert not (tmp_path / "pkg").exists()
