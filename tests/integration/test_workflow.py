"""The demo workflow for real: snakemake runs synth, manifests, train, valid, evaluate,
generate and publish through the local launcher (torchrun), in a temporary folder.

The end-to-end run, the kill-and-resume run and the drift refusal take 30-60 s each on
2 cores (every stage job starts torchrun and imports torch); they are the workflow's
acceptance tests, so they run in the default suite.
"""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# compression/debug shrunk to seconds per stage: 2 epochs of 2 updates on short segments,
# evaluated and sampled at every epoch (the demo does so at the last one only) so that the
# per-epoch ordering of the stage jobs is exercised.
TINY = [
    "solver=compression/debug",
    "optim.epochs=2",
    "optim.updates_per_epoch=2",
    "evaluate.every=1",
    "generate.every=1",
    "dataset.batch_size=2",
    "dataset.segment_duration=0.5",
    "dataset.valid.num_samples=2",
    "dataset.evaluate.num_samples=2",
    "dataset.generate.num_samples=1",
]
# The same with evaluate and generate at the last epoch only, as the demo: for the tests
# that exercise resuming and DVC rather than the per-epoch ordering (two jobs fewer each).
TINY_LAST = [o for o in TINY if not o.startswith(("evaluate.every=", "generate.every="))]
# lm/debug shrunk to seconds per stage: 1 epoch of 2 updates, a 1-layer LM on short windows
# (short enough for a codec of up to 500 frames/s).
LM_TINY = [
    "solver=lm/debug",
    "conditioner=label",
    "optim.epochs=1",
    "optim.updates_per_epoch=2",
    "dataset.batch_size=2",
    "dataset.segment_duration=0.25",
    "transformer_lm.dim=32",
    "transformer_lm.num_layers=1",
    "generate.duration=0.25",
    "generate.prompt_duration=0.1",
    "generate.samples_per_condition=1",
    "classifier.steps=20",
    "logging.log_updates=1",  # a curve point per update (dvc plots)
]
SYNTH = {
    "train": {"n": 8, "seed": 1},
    "valid": {"n": 4, "seed": 2},
    "evaluate": {"n": 4, "seed": 3},
}


def snakemake(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AUDIOFLOW_XP_DIR", None)
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def write_config(folder: Path, overrides: list[str], **extra) -> Path:
    # a train job per epoch: what these tests follow (kill in epoch 2, resume, ordering)
    config = {
        "xps": [{"name": "tiny", "overrides": overrides}],
        "synth": SYNTH,
        "train": {"epochs_per_job": 1},
        **extra,
    }
    path = folder / "wf.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def signature_of(folder: Path, overrides: list[str]) -> str:
    cache = json.loads((folder / ".snakemake" / "audioflow" / "plans.json").read_text())
    return next(v["sig"] for k, v in cache["plans"].items() if json.loads(k)[1] == overrides)


def jobs_run(output: str, rule: str) -> list[str]:
    """Outputs of the jobs of ``rule`` that a snakemake run started."""
    return re.findall(rf"^(?:local)?rule {rule}:\n(?:.*\n)*?\s+output: (\S+)", output, re.M)


def test_data_rules_build_corpus_and_manifest(tmp_path):
    config = write_config(tmp_path, TINY)
    done = snakemake(tmp_path, "data/synth/valid/manifest.jsonl.gz", "--configfile", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    audio = sorted((tmp_path / "data/synth/valid/audio").glob("*.flac"))
    assert len(audio) == SYNTH["valid"]["n"]
    with gzip.open(tmp_path / "data/synth/valid/manifest.jsonl.gz", "rt") as f:
        entries = [json.loads(line) for line in f]
    assert sorted(Path(e["path"]).name for e in entries) == [p.name for p in audio]
    assert all(e["sample_rate"] == 16000 and e["duration"] > 1 for e in entries)
    for log in ("audio.log", "manifest.log"):
        assert (tmp_path / "logs/data/synth/valid" / log).is_file()
    again = snakemake(
        tmp_path, "-n", "data/synth/valid/manifest.jsonl.gz", "--configfile", str(config)
    )
    assert "Nothing to be done" in again.stdout + again.stderr


def test_demo_workflow_end_to_end(tmp_path):
    publish = [{"xp": "tiny", "as": "tiny_codec"}]
    config = write_config(tmp_path, TINY, publish=publish)
    done = snakemake(tmp_path, "--configfile", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    sig = signature_of(tmp_path, TINY)
    xp = tmp_path / "outputs" / "xps" / sig
    for stage in ("train", "valid", "evaluate", "generate"):
        for epoch in (1, 2):
            metrics = json.loads((xp / "stages" / f"{stage}_{epoch}.json").read_text())
            assert isinstance(metrics, dict)
            log = tmp_path / "outputs" / "logs" / "xps" / sig / "stages" / f"{stage}_{epoch}.log"
            assert log.stat().st_size > 0
    assert "loss" in " ".join(json.loads((xp / "stages" / "valid_2.json").read_text()))
    # evaluate/generate 1 used the best state as of epoch 1: valid 2 started after them.
    valid_2 = (xp / "stages" / "valid_2.json").stat().st_mtime
    for stage in ("evaluate", "generate"):
        assert (xp / "stages" / f"{stage}_1.json").stat().st_mtime < valid_2
    history = json.loads((xp / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert all({"train", "valid"} <= set(entry) for entry in history)
    assert (xp / "checkpoint.th").is_file() and (xp / "best.th").is_file()
    assert any((xp / "samples").rglob("*.wav")) or any((xp / "samples").rglob("*.flac"))
    assert 'src="charts/' in (xp / "report" / "index.html").read_text()  # the XP's report
    reference = tmp_path / "reference" / "tiny_codec"
    assert {"model.th", "config.yaml", "metadata.json"} <= {p.name for p in reference.iterdir()}
    assert json.loads((reference / "metadata.json").read_text())["signature"] == sig
    assert (tmp_path / "logs" / "reference" / "tiny_codec.log").is_file()

    again = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert "Nothing to be done" in again.stdout + again.stderr
    summary = subprocess.run(
        [sys.executable, "-m", "audioflow.workflow.summary", "--configfile", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert summary.returncode == 0, summary.stderr
    assert str(xp) in summary.stdout and "2/2 epochs validated" in summary.stdout
    assert f"{reference} [published]" in summary.stdout


def test_killed_workflow_resumes_without_redoing_finished_epochs(tmp_path):
    overrides = [*TINY_LAST, "optim.epochs=3", "optim.updates_per_epoch=30"]
    overrides.remove("optim.epochs=2")
    overrides.remove("optim.updates_per_epoch=2")
    config = write_config(tmp_path, overrides)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", "2"]
    cmd += ["--configfile", str(config)]
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115 - closed below
    # Its own process group, as a terminal job: the kill reaches snakemake and every stage.
    first = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    stages = None
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and first.poll() is None:
            found = list((tmp_path / "outputs" / "xps").glob("*/stages/train_1.json"))
            if found:
                stages = found[0].parent
                break
            time.sleep(0.2)
        assert stages is not None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(3)  # well into epoch 2
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        log.close()
    assert not (stages / "train_3.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in stages.glob("*.json")}
    assert "train_1.json" in before

    # A hard kill leaves snakemake's own directory lock behind: release it, as documented.
    assert snakemake(tmp_path, "--unlock", "--configfile", str(config)).returncode == 0
    done = snakemake(tmp_path, "--configfile", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    for name, mtime in before.items():
        assert (stages / name).stat().st_mtime_ns == mtime, f"{name} was redone"
    trained = jobs_run(done.stdout + done.stderr, "train")
    assert not any(p.endswith("train_1.json") for p in trained)
    assert any(p.endswith("train_3.json") for p in trained), trained
    history = json.loads((stages.parent / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == [1, 2, 3]


def test_changed_default_is_refused_by_the_drift_check(tmp_path):
    # A user config folder shadows the dataset config; editing it changes a default.
    user = tmp_path / "my_config" / "dset" / "audio"
    user.mkdir(parents=True)
    shipped = (REPO / "config" / "dset" / "audio" / "synth.yaml").read_text()
    generate = "generate: data/synth/evaluate/manifest.jsonl.gz"
    assert generate in shipped
    (user / "synth.yaml").write_text(shipped)
    config = write_config(tmp_path, TINY, config_dir=str(tmp_path / "my_config"))
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).returncode == 0
    sig = signature_of(tmp_path, TINY)
    first_epoch = f"outputs/xps/{sig}/stages/train_1.json"
    done = snakemake(tmp_path, first_epoch, "--configfile", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    edited = generate.replace("evaluate", "valid")
    (user / "synth.yaml").write_text(shipped.replace(generate, edited))
    done = snakemake(tmp_path, "--configfile", str(config))
    assert signature_of(tmp_path, TINY) == sig  # a default is not part of the signature
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "datasource.generate" in output and "--accept-drift" in output
    stages = tmp_path / "outputs" / "xps" / sig / "stages"
    assert not (stages / "valid_1.json").exists()

    # Accepted explicitly, the XP goes on and the acceptance is recorded in its folder.
    valid = f"outputs/xps/{sig}/stages/valid_1.json"
    done = snakemake(tmp_path, valid, "--configfile", str(config), "--config", "accept_drift=True")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert (stages / "valid_1.json").is_file()
    assert "datasource.generate" in (stages.parent / "drift.json").read_text()
