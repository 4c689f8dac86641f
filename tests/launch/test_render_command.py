"""The `audioflow run` command that `audioflow k8s render` puts in the pod.

The pod must open the same XP folder (the rendered overrides sign to the XP's signature,
checked by parsing them with `audioflow run`'s own parser and composing them), with the
cluster's run-only settings (GPU device, metrics port), not those of the run that
created the XP, and with the user config folder the XP needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from audioflow.cli import main as cli
from audioflow.config import ConfigError, get_xp, signature
from audioflow.launch.base import CONFIG_ERROR_EXIT_CODE
from audioflow.launch.manifests import stage_args
from audioflow.solvers.commands.run import _reparse
from audioflow.solvers.commands.run import add_arguments as run_arguments

REPO = Path(__file__).resolve().parents[2]
USER_CONFIG = REPO / "tests" / "solvers" / "user_config"
VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
METRICS_PORT = 9200

TEAM = """\
clusters:
  local:
    xp_root: {xp_root}
  kubernetes:
    xp_root: {xp_root}
    kubernetes:
      namespace: speech
      image: registry.example/audioflow:2
      metrics_port: 9200
"""


@pytest.fixture
def team_env(use_team):
    return use_team(TEAM)


def render(capsys, *args: str) -> dict:
    """The Job `audioflow k8s render ARGS` prints, checked against the strict schemas."""
    status = cli(["k8s", "render", *args])
    out = capsys.readouterr()
    assert status == 0, out.err
    job, *dependents = list(yaml.safe_load_all(out.out))
    for obj in (job, *dependents):
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    return job


def container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def run_args(job: dict) -> argparse.Namespace:
    """The pod's `audioflow run` arguments, parsed as `audioflow run` parses them."""
    command = container(job)["command"]
    argv = command[command.index("--") + 1 :]
    assert argv[0] == "run"
    parser = argparse.ArgumentParser()
    run_arguments(parser)
    return _reparse(parser.parse_args(argv[1:]))


def test_cluster_settings_replace_the_run_only_keys_of_the_first_run(team_env, capsys):
    # First run on a laptop: CPU, its own metrics port, debug logs, fewer threads.
    local = ["device=cpu", "monitoring.port=9300", "logging.level=DEBUG", "num_threads=2"]
    xp = get_xp(["optim.lr=0.002", *local])
    job = render(capsys, xp.sig, "train", "3", "--nodes", "2", "--gpus", "8")
    run = run_args(job)
    assert run.overrides == ["device=cuda", f"monitoring.port={METRICS_PORT}", "optim.lr=0.002"]
    ports = {p["name"]: p["containerPort"] for p in container(job)["ports"]}
    assert ports["metrics"] == METRICS_PORT  # where the process serves: the PodMonitor finds it
    assert (run.stage, run.epoch, run.config_dir, run.accept_drift) == ("train", 3, None, False)
    assert signature(run.overrides) == xp.sig  # the pod opens the same XP folder
    command = job["metadata"]["annotations"]["audioflow.io/command"]
    assert "device=cpu" not in command and "9300" not in command


def test_overrides_of_xp_exclude_stay_so_the_signature_does_not_change(team_env, capsys):
    # xp.* is excluded (as by default), but with logging.* no longer excluded logging.level
    # is signed: both overrides must reach the pod.
    exclude = "xp.exclude=[device,monitoring.*,xp.*]"
    overrides = [exclude, "logging.level=DEBUG", "device=cpu"]
    xp = get_xp(overrides)
    assert xp.sig != get_xp(["logging.level=DEBUG"]).sig
    run = run_args(render(capsys, xp.sig, "valid", "1"))
    assert run.overrides == [f"monitoring.port={METRICS_PORT}", *overrides[:2]]
    assert signature(run.overrides) == xp.sig


def test_config_dir_and_accept_drift_reach_the_pod(team_env, capsys):
    xp = get_xp(["solver=my_solver", "optim.lr=0.05"], config_dir=USER_CONFIG)
    job = render(capsys, xp.sig, "valid", "2", "--config-dir", str(USER_CONFIG), "--accept-drift")
    run = run_args(job)
    assert (run.config_dir, run.accept_drift) == (str(USER_CONFIG), True)
    assert run.expect_sig == xp.sig  # the pod refuses to run if its overrides sign otherwise
    assert signature(run.overrides, config_dir=run.config_dir) == xp.sig
    # Without the folder, the same overrides cannot compose: what the pod would have hit.
    with pytest.raises(ConfigError, match="my_solver"):
        signature(run.overrides)
    # Options follow the overrides, as in the workflow's rules.
    argv = container(job)["command"]
    assert argv[-7:] == ["--config-dir", str(USER_CONFIG), "--accept-drift"] + [
        "--stage",
        "valid",
        "--epoch",
        "2",
    ]


def test_empty_config_dir_exits_2_with_one_line(team_env, capsys):
    xp = get_xp(["optim.lr=0.002"])
    status = cli(["k8s", "render", xp.sig, "valid", "1", "--config-dir", ""])
    out = capsys.readouterr()
    assert status == CONFIG_ERROR_EXIT_CODE and out.out == ""
    assert out.err.strip().count("\n") == 0 and "--config-dir" in out.err


def test_stage_args_replace_the_jobs_device_and_port_with_the_clusters():
    args = ["run", "+device=cpu", "a=1", "monitoring.port=1234", "--config-dir", "d", "--stage"]
    assert stage_args(args, 8, METRICS_PORT) == [
        "run",
        "device=cuda",
        f"monitoring.port={METRICS_PORT}",
        "a=1",
        "--config-dir",
        "d",
        "--stage",
    ]
    # No GPU or no metrics port on the cluster: nothing to impose, the job's keys stay.
    assert stage_args(args, 0, 0) == args
    assert stage_args(["manifest", "device=cpu"], 8, METRICS_PORT) == ["manifest", "device=cpu"]
