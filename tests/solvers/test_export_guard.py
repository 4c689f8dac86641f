"""`audioflow export` and `audioflow codec` on bad input: one line on stderr naming the
path or value, exit 2 for the user's choices, nothing written or deleted.

A tiny real XP (one epoch of two updates on four synthetic files, a few seconds) is
trained once for the module and exported by the real command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflow.cli import main

from .tiny_codec import train_tiny_codec


@pytest.fixture(scope="module")
def xp(tmp_path_factory):
    """(signature, XP folder, XP root) of the tiny XP, trained to a best state."""
    root = tmp_path_factory.mktemp("export_guard")
    xp = train_tiny_codec(root)
    return xp.sig, Path(xp.folder), root / "xps"


@pytest.fixture
def xp_env(xp, monkeypatch):
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(xp[2]))
    return xp


@pytest.fixture(scope="module")
def package(xp, tmp_path_factory):
    folder = tmp_path_factory.mktemp("package") / "pkg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(xp[2]))
        assert main(["export", xp[0], "-o", str(folder)]) == 0
    return folder


def _tree(folder: Path) -> dict:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# export --force replaces packages, never other folders


def test_force_refuses_a_folder_that_is_not_a_package(xp_env, tmp_path, capsys):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "notes.txt").write_text("a week of listening notes\n")
    before = _tree(tmp_path)
    assert main(["export", xp_env[0], "-o", str(target), "--force"]) == 2
    assert _one_line(capsys) == (
        f"audioflow export: {target}: not a codec package (holds notes.txt); "
        "--force replaces packages only; choose another output"
    )
    assert _tree(tmp_path) == before


def test_force_refuses_a_package_with_other_files_beside_it(xp_env, package, tmp_path, capsys):
    target = tmp_path / "pkg"
    shutil.copytree(package, target)
    (target / "samples").mkdir()
    (target / "samples" / "a.wav").write_bytes(b"RIFF")
    before = _tree(tmp_path)
    assert main(["export", xp_env[0], "-o", str(target), "--force"]) == 2
    assert f"{target}: not a codec package (holds samples)" in _one_line(capsys)
    assert _tree(tmp_path) == before


def test_force_replaces_an_existing_package(xp_env, package, tmp_path, capsys):
    target = tmp_path / "pkg"
    shutil.copytree(package, target)
    meta = json.loads((target / "metadata.json").read_text())
    (target / "metadata.json").write_text(json.dumps({**meta, "signature": "old"}))
    assert main(["export", xp_env[0], "-o", str(target), "--force"]) == 0
    assert json.loads((target / "metadata.json").read_text())["signature"] == xp_env[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]  # no temporary left


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_output_naming_a_file_is_refused(xp_env, tmp_path, capsys, force):
    target = tmp_path / "model.bin"
    target.write_bytes(b"keep me")
    assert main(["export", xp_env[0], "-o", str(target), *force]) == 2
    assert _one_line(capsys) == (
        f"audioflow export: {target}: is a file, not a package folder; choose another output"
    )
    assert target.read_bytes() == b"keep me" and len(list(tmp_path.iterdir())) == 1


def test_output_under_a_file_is_refused(xp_env, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "sub" / "pkg"
    assert main(["export", xp_env[0], "-o", str(target)]) == 2
    assert _one_line(capsys) == (
        f"audioflow export: {target}: {tmp_path / 'afile'} is a file, not a folder; "
        "choose another output"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize(
    ("content", "reason"), [(b'[{"epoch": 1,', "not valid JSON"), (b"{}", "not a JSON list")]
)
def test_corrupt_history_is_named(xp_env, tmp_path, capsys, content, reason):
    history = xp_env[1] / "history.json"
    good = history.read_bytes()
    history.write_bytes(content)
    try:
        assert main(["export", xp_env[0], "-o", str(tmp_path / "pkg")]) == 2
    finally:
        history.write_bytes(good)
    line = _one_line(capsys)
    assert line.startswith(f"audioflow export: {history}: {reason}")
    assert line.endswith("delete it and run a stage of the XP again to rebuild it")
    assert not (tmp_path / "pkg").exists()


# codec


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(1600), 16000)
    return path


def _encode(wav: Path, out: Path, package: Path, *extra: str) -> int:
    return main(["codec", "encode", str(wav), "-o", str(out), "--model", str(package), *extra])


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        ("tpu", "not a device; choose cpu, cuda or cuda:N"),
        ("meta", "not supported; choose cpu, cuda or cuda:N"),
    ],
)
def test_codec_names_an_unknown_device(package, wav, tmp_path, capsys, device, reason):
    assert _encode(wav, tmp_path / "c.th", package, "--device", device) == 2
    assert _one_line(capsys) == f"audioflow codec: --device {device}: {reason}"
    assert not (tmp_path / "c.th").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_codec_says_there_is_no_cuda_device(package, wav, tmp_path, capsys):
    assert _encode(wav, tmp_path / "c.th", package, "--device", "cuda") == 2
    line = "audioflow codec: --device cuda: no CUDA device here; use --device cpu"
    assert _one_line(capsys) == line
    assert not (tmp_path / "c.th").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_codec_names_a_cuda_index_out_of_range(package, wav, tmp_path, capsys):
    count = torch.cuda.device_count()
    assert _encode(wav, tmp_path / "c.th", package, "--device", f"cuda:{count}") == 2
    assert f"--device cuda:{count}: this machine has {count} CUDA device(s)" in _one_line(capsys)
    assert _encode(wav, tmp_path / "c.th", package, "--device", "cuda") == 0


def test_codec_refuses_an_empty_input(package, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), dtype="float32"), 16000)
    assert _encode(empty, tmp_path / "c.th", package) == 2
    assert _one_line(capsys) == (
        f"audioflow codec: {empty}: 0 samples at 16000 Hz, too short for the codec "
        "(at least 1); choose another input"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.wav"]


def test_codec_encodes_a_single_sample(package, tmp_path):
    one = tmp_path / "one.wav"
    sf.write(one, np.full((1, 1), 0.1, dtype="float32"), 16000)
    assert _encode(one, tmp_path / "c.th", package) == 0


@pytest.mark.parametrize("action", ["encode", "decode"])
def test_codec_output_that_cannot_be_a_file(package, wav, tmp_path, capsys, action):
    codes = tmp_path / "codes.th"
    assert _encode(wav, codes, package) == 0
    capsys.readouterr()
    source = wav if action == "encode" else codes
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    before = _tree(tmp_path)
    for out, reason in [
        (tmp_path / "adir", "is a folder"),
        (tmp_path / "afile" / "o.th", f"{tmp_path / 'afile'} is a file, not a folder"),
    ]:
        argv = ["codec", action, str(source), "-o", str(out), "--model", str(package)]
        assert main(argv) == 2
        assert _one_line(capsys) == f"audioflow codec: {out}: {reason}; choose another output"
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("config.yaml", "model: [unclosed\n", "not valid YAML (ParserError)"),
        ("config.yaml", "- a list\n", "not a config mapping"),
        ("config.yaml", "sample_rate: 16000\n", "cannot build the codec"),
        ("metadata.json", '{"signature": ', "not valid JSON"),
        ("metadata.json", "[1, 2]", "not a JSON object"),
    ],
)
def test_codec_names_the_broken_package_file(package, wav, tmp_path, capsys, name, content, reason):
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    (broken / name).write_text(content)
    assert _encode(wav, tmp_path / "c.th", broken) == 1
    line = _one_line(capsys)
    assert line.startswith(f"audioflow codec: {broken / name}: {reason}"), line
    assert not (tmp_path / "c.th").exists()


def test_replacing_puts_back_a_package_that_gained_other_files(package, tmp_path):
    """Files added to the old package after the first check survive the swap."""
    from audioflow.models.package import OutputError, _swap_in

    new, dest = tmp_path / "new", tmp_path / "pkg"
    shutil.copytree(package, new)
    shutil.copytree(package, dest)
    (dest / "notes.txt").write_text("added meanwhile")
    before = _tree(tmp_path)
    with pytest.raises(OutputError, match="not a codec package any more"):
        _swap_in(new, dest)
    assert _tree(tmp_path) == before
