"""The Snakefile itself, planned with real `snakemake` processes (dry runs, lint, errors).

Each test runs snakemake in a temporary working directory with a workflow config of its
own, so outputs, caches and locks never touch the repository.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO = ["solver=compression/debug", "optim.epochs=3", "evaluate.every=2"]


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile from ``cwd``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AUDIOFLOW_XP_DIR", None)
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def write_config(folder: Path, **config) -> Path:
    config.setdefault("xps", [{"name": "demo", "overrides": DEMO}])
    config.setdefault("synth", {"train": {"n": 4}, "valid": {"n": 2}, "evaluate": {"n": 2}})
    path = folder / "wf.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def job_counts(output: str) -> dict[str, int]:
    """The `Job stats` table of a dry run as {rule: count}."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def plans(folder: Path) -> dict:
    cache = json.loads((folder / ".snakemake" / "audioflow" / "plans.json").read_text())
    return {tuple(json.loads(k)[1]): v for k, v in cache["plans"].items()}


def finish_all(folder: Path, sig: str, epochs: int) -> None:
    """Write every output of a finished XP, each newer than its inputs (as a real run does).

    Only for planning tests: what a stage writes is checked by tests/integration.
    """
    stamp = 1_700_000_000

    def write(path: Path, when: int, directory: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(exist_ok=True) if directory else path.write_text("{}")
        os.utime(path, (stamp + when, stamp + when))

    for split in ("train", "valid", "evaluate"):
        write(folder / "data" / "synth" / split / "audio", 1, directory=True)
        write(folder / "data" / "synth" / split / "manifest.jsonl.gz", 2)
    stages = folder / "outputs" / "xps" / sig / "stages"
    for epoch in range(1, epochs + 1):
        for rank, stage in enumerate(("train", "valid", "evaluate", "generate")):
            write(stages / f"{stage}_{epoch}.json", 10 * epoch + min(rank, 2))
    write(stages.parent / "report" / "index.html", 10 * epochs + 5)


def test_lint_is_clean(tmp_path):
    done = snakemake(tmp_path, "--lint", "--configfile", str(write_config(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations, your workflow is in a good condition" in done.stdout + done.stderr


def test_dry_run_has_one_job_per_stage_and_epoch(tmp_path):
    user = tmp_path / "my config"  # a user config folder (its solvers, teams, groups)
    user.mkdir()
    publish = [{"xp": "demo", "as": "demo_codec"}]
    config = write_config(tmp_path, publish=publish, config_dir=str(user))
    done = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    counts = job_counts(done.stdout)
    # 3 epochs; evaluate at 2 and 3; generate.every of compression/debug plus the last.
    assert counts["synth"] == counts["manifest"] == 3
    assert counts["train"] == counts["valid"] == 3
    assert counts["evaluate"] == 2
    assert counts["publish"] == 1
    sig = plans(tmp_path)[tuple(DEMO)]["sig"]
    assert re.fullmatch(r"[0-9a-f]{8}", sig)
    assert f"outputs/xps/{sig}/stages/train_3.json" in done.stdout
    assert f"outputs/logs/xps/{sig}/stages/valid_3.log" in done.stdout
    # every job that reads the XP's config or imports its solver gets the folder
    assert f"-- export {sig} -o reference/demo_codec.tmp --config-dir '{user}'" in done.stdout
    assert f"--config-dir '{user}' --expect-sig {sig} --stage train --epoch 3" in done.stdout


def test_valid_waits_for_the_previous_epochs_evaluate_and_generate(tmp_path):
    # evaluate/generate E read the best state as of E; valid E+1 may replace it.
    done = snakemake(tmp_path, "-n", "--configfile", str(write_config(tmp_path)))
    assert done.returncode == 0, done.stderr
    sig = plans(tmp_path)[tuple(DEMO)]["sig"]
    stages = f"outputs/xps/{sig}/stages"
    jobs = re.findall(r"^rule valid:\n\s+input: (.*)\n\s+output: (\S+)", done.stdout, re.M)
    inputs = {output: set(listed.split(", ")) for listed, output in jobs}
    assert f"{stages}/evaluate_2.json" in inputs[f"{stages}/valid_3.json"]
    assert f"{stages}/evaluate_1.json" not in inputs[f"{stages}/valid_2.json"]  # every=2
    assert f"{stages}/train_2.json" in inputs[f"{stages}/valid_2.json"]


def test_train_chunks_and_launch_command(tmp_path):
    config = write_config(tmp_path, train={"epochs_per_job": 2})
    done = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    assert job_counts(done.stdout)["train"] == 2  # epochs [1, 2] and [3]
    sig = plans(tmp_path)[tuple(DEMO)]["sig"]
    assert (
        f"audioflow launch --launcher local --name af-{sig}-train-2 --nodes 1 --nproc-per-node 1"
        in done.stdout
    )
    assert "-- run solver=compression/debug optim.epochs=3 evaluate.every=2" in done.stdout
    assert "--stage train --epoch 2" in done.stdout
    assert "--config-dir" not in done.stdout  # none in the workflow config


def test_finished_markers_and_excluded_keys_rerun_nothing(tmp_path):
    config = write_config(tmp_path)
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).returncode == 0
    finish_all(tmp_path, plans(tmp_path)[tuple(DEMO)]["sig"], 3)
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout
    # An excluded key keeps the signature: the same outputs, nothing to run.
    excluded = [*DEMO, "logging.level=DEBUG", "num_threads=2"]
    config = write_config(tmp_path, xps=[{"name": "demo", "overrides": excluded}])
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout
    # A real override is a new XP: all its stages run, the data is reused.
    changed = [*DEMO, "optim.lr=7e-4"]  # not a default (debug.yaml has 1e-3)
    config = write_config(tmp_path, xps=[{"name": "demo", "overrides": changed}])
    counts = job_counts(snakemake(tmp_path, "-n", "--configfile", str(config)).stdout)
    assert counts["train"] == 3 and "synth" not in counts


def test_a_newly_wanted_generate_reruns_no_finished_stage(tmp_path):
    # generate.every is excluded from the signature: turning it on later must run only the
    # missing generate jobs, not valid E+1 (which waits for generate E only when it is to run).
    config = write_config(
        tmp_path, xps=[{"name": "demo", "overrides": [*DEMO, "generate.every=3"]}]
    )
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).returncode == 0
    sig = plans(tmp_path)[(*DEMO, "generate.every=3")]["sig"]
    finish_all(tmp_path, sig, 3)
    stages = tmp_path / "outputs" / "xps" / sig / "stages"
    for epoch in (1, 2):
        (stages / f"generate_{epoch}.json").unlink()  # never run with every=3
    config = write_config(
        tmp_path, xps=[{"name": "demo", "overrides": [*DEMO, "generate.every=1"]}]
    )
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert plans(tmp_path)[(*DEMO, "generate.every=1")]["sig"] == sig
    counts = job_counts(done.stdout)
    assert counts == {"generate": 2, "all": 1}, done.stdout


def test_rebuilt_manifest_reruns_no_finished_stage(tmp_path):
    # e.g. `dvc checkout` or a rerun of the data rules: the XP's signature is unchanged.
    config = write_config(tmp_path)
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).returncode == 0
    finish_all(tmp_path, plans(tmp_path)[tuple(DEMO)]["sig"], 3)
    manifest = tmp_path / "data" / "synth" / "valid" / "manifest.jsonl.gz"
    os.utime(manifest, (2_000_000_000, 2_000_000_000))
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout


def test_missing_valid_marker_reruns_from_there(tmp_path):
    config = write_config(tmp_path)
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).returncode == 0
    sig = plans(tmp_path)[tuple(DEMO)]["sig"]
    finish_all(tmp_path, sig, 3)
    (tmp_path / "outputs" / "xps" / sig / "stages" / "valid_3.json").unlink()
    counts = job_counts(snakemake(tmp_path, "-n", "--configfile", str(config)).stdout)
    assert counts.get("train") is None and counts["valid"] == 1
    assert counts["evaluate"] == 1 and counts["generate"] == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"launcher": "slurm"}, "launcher"),
        ({"xps": [{"name": "x", "overrides": ["optim.lrr=1"]}]}, "optim.lrr"),
        ({"grids": ["missing.yaml"]}, "missing.yaml does not exist"),
        ({"publish": [{"xp": "other", "as": "ref"}]}, "publish names XP 'other'"),
    ],
)
def test_bad_config_stops_with_the_key_named(tmp_path, config, message):
    done = snakemake(tmp_path, "-n", "--configfile", str(write_config(tmp_path, **config)))
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert not (tmp_path / "outputs").exists()
