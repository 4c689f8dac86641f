"""`dvc repro` of the demo pipeline in a temporary git repository, then its published
reference model pushed to a real S3-compatible server (moto) and pulled into a fresh clone,
where `//reference/demo_codec` loads.

The repository is a copy of this checkout with the demo shrunk to seconds (tiny corpus,
a codec of 2 epochs of 2 updates, a 1-layer token LM of 2 updates); every stage still runs
for real through Snakemake and torchrun: synth -> demo_codec -> tokens -> demo_lm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from .dvc_helpers import BIN, BUCKET, run, s3_env, tree_digest
from .test_dvc_s3 import S3Server
from .test_workflow import LM_TINY, SYNTH, TINY_LAST

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
SPEECH_TINY = [
    "solver=asr/debug",
    "optim.epochs=1",
    "optim.updates_per_epoch=2",
    "asr_model.dim=32",
    "asr_model.layers=1",
    "asr_model.heads=2",
    "asr_model.ffn_dim=64",
    "dataset.batch_size=4",
    "tokenizer.kind=char",
    "decoding.beam_size=1",
]
SPEECH_SYNTH = {
    "train": {"n": 8, "seed": 1, "voices": "train"},
    "valid": {"n": 4, "seed": 2, "voices": "train"},
    "evaluate": {"n": 4, "seed": 3, "voices": "test"},
}


def _env() -> dict:
    env = s3_env(max_attempts=1)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    for key in [k for k in env if k.startswith("AUDIOFLOW_")]:
        del env[key]
    return env


def _copy_checkout(dest):
    """The tracked and untracked-but-not-ignored files of this checkout, as a new repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    workflow = dest / "config" / "workflow.yaml"
    config = yaml.safe_load(workflow.read_text())
    config["xps"] = [
        {"name": "demo", "overrides": TINY_LAST},
        {"name": "demo_lm", "overrides": LM_TINY},
    ]
    config["synth"] = SYNTH
    workflow.write_text(yaml.safe_dump(config, sort_keys=False))
    speech = dest / "config" / "workflow_speech.yaml"  # the speech demo, shrunk the same way
    config = yaml.safe_load(speech.read_text())
    config["xps"] = [{"name": "demo_speech", "overrides": SPEECH_TINY}]
    config["speech_synth"] = SPEECH_SYNTH
    speech.write_text(yaml.safe_dump(config, sort_keys=False))
    run("git", "init", "-q", cwd=dest)
    run("git", "config", "user.email", "ci@example.com", cwd=dest)
    run("git", "config", "user.name", "ci", cwd=dest)
    run("git", "add", "-A", cwd=dest)
    run("git", "commit", "-qm", "audioflow checkout", cwd=dest)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """A repository where `dvc repro` ran once: (path, output of that repro)."""
    repo = tmp_path_factory.mktemp("dvc") / "repo"
    repo.mkdir()
    _copy_checkout(repo)
    first = run("dvc", "repro", cwd=repo, env=_env(), check=False)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return repo, first


# the module's repository is built in the first test that asks for it: every stage of the
# codec and the LM, minutes on a loaded 2-core machine
@pytest.mark.timeout(1200)
def test_repro_builds_reference_metrics_and_plots_then_is_a_noop(reproduced):
    repo, first = reproduced
    assert _ran(first.stdout) >= {"demo_codec", "tokens", "demo_lm"}
    dag = run("dvc", "dag", "--dot", cwd=repo, env=_env()).stdout
    for edge in (
        '"synth@train" -> "demo_codec"',
        '"demo_codec" -> "tokens"',
        '"tokens" -> "demo_lm"',
    ):
        assert edge in dag, dag
    lm = json.loads((repo / "reference" / "demo_lm" / "metadata.json").read_text())
    assert lm["solver"] == "lm" and len(lm["codec"]["content_hash"]) == 64
    reference = repo / "reference" / "demo_codec"
    assert {"model.th", "config.yaml", "metadata.json"} <= {p.name for p in reference.iterdir()}
    for split in SYNTH:
        manifest = repo / "data" / "synth" / split / "manifest.jsonl.gz"
        assert manifest.stat().st_size > 0
    metrics = json.loads((repo / "reports" / "demo_codec" / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and np.isfinite(metrics["sisnr"])
    rows = (repo / "reports" / "demo_codec" / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and "valid_mel_distance" in rows[0]
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
    shown = run("dvc", "metrics", "show", "--json", cwd=repo, env=_env())
    assert "sisnr" in shown.stdout
    # the speech demo: its corpus versioned, its recognizer published with WER/CER
    asr = json.loads((repo / "reports" / "demo_asr" / "metrics.json").read_text())
    assert 0 <= asr["wer"] and 0 <= asr["cer"] and (repo / "reference/demo_asr/model.th").is_file()
    assert (repo / "data/speech/evaluate/manifest.jsonl.gz").stat().st_size > 0

    second = run("dvc", "repro", cwd=repo, env=_env())
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout
    assert "changed" not in run("dvc", "status", cwd=repo, env=_env()).stdout


def test_reference_pulled_on_another_clone_loads(reproduced, tmp_path):
    repo, _ = reproduced
    env = _env()
    s3 = S3Server()
    s3.start()
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        run("dvc", "remote", "add", "-f", "s3", f"s3://{BUCKET}/store", cwd=repo)
        run("dvc", "remote", "modify", "s3", "endpointurl", s3.url, cwd=repo)
        run("dvc", "push", "-r", "s3", cwd=repo, env=env)
        run("git", "add", "-A", cwd=repo)
        run("git", "commit", "-qm", "dvc.lock and the S3 remote", cwd=repo)

        clone = tmp_path / "clone"
        run("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
        assert not (clone / "reference" / "demo_codec").exists()
        run(
            "dvc",
            "pull",
            "-r",
            "s3",
            "reference/demo_codec",
            "data/synth/evaluate",
            cwd=clone,
            env=env,
        )
    finally:
        s3.stop()
    for path in ("reference/demo_codec", "data/synth/evaluate"):
        assert tree_digest(clone / path) == tree_digest(repo / path)

    clip = sorted((clone / "data" / "synth" / "evaluate").rglob("*.flac"))[0]
    codes, decoded = tmp_path / "codes.th", tmp_path / "decoded.wav"
    audioflow = str(BIN / "audioflow")
    for args in (
        ["encode", str(clip), "-o", str(codes)],
        ["decode", str(codes), "-o", str(decoded)],
    ):
        done = subprocess.run(
            [audioflow, "codec", *args, "--model", "//reference/demo_codec"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    assert "codes" in torch.load(codes, weights_only=True) or codes.stat().st_size > 0
    original, _ = sf.read(clip)
    audio, rate = sf.read(decoded)
    assert rate == 16000 and abs(len(audio) - len(original)) < 1000


def test_unknown_reference_is_a_clear_error(reproduced, tmp_path):
    repo, _ = reproduced
    clip = sorted((repo / "data" / "synth" / "evaluate").rglob("*.flac"))[0]
    done = subprocess.run(
        [
            str(BIN / "audioflow"),
            "codec",
            "encode",
            str(clip),
            "-o",
            str(tmp_path / "codes.th"),
            "--model",
            "//reference/nope",
        ],
        cwd=repo,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "reference/nope" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "codes.th").exists()


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_new_codec_reruns_exactly_the_tokens_and_the_lm(reproduced):
    """Last in this module: it publishes another codec XP in the shared repository."""
    repo, _ = reproduced
    before = json.loads((repo / "reference" / "demo_lm" / "metadata.json").read_text())["codec"]
    workflow = repo / "config" / "workflow.yaml"
    config = yaml.safe_load(workflow.read_text())
    config["xps"][0]["overrides"] = [*TINY_LAST, "optim.lr=2e-3"]  # another codec XP as demo_codec
    workflow.write_text(yaml.safe_dump(config, sort_keys=False))
    again = run("dvc", "repro", cwd=repo, env=_env(), check=False)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert _ran(again.stdout) == {"demo_codec", "tokens", "demo_lm"}
    after = json.loads((repo / "reference" / "demo_lm" / "metadata.json").read_text())["codec"]
    assert after["content_hash"] != before["content_hash"]
    assert after["signature"] != before["signature"]
    # the LM's XP (same signature) trained again; its first training is kept aside
    stale = [p for p in (repo / "outputs" / "xps").iterdir() if (p / "stale_codec").is_dir()]
    assert len(stale) == 1
    assert (stale[0] / "stale_codec" / before["content_hash"][:16] / "history.json").is_file()
