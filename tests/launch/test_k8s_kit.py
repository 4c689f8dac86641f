"""The cluster kit around the launcher: settings from team files, `audioflow k8s render`,
the exit-status-keeping torchrun, the Snakemake profile and the Dockerfile."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from audioflow.launch.base import CONFIG_ERROR_EXIT_CODE, get_launcher
from audioflow.launch.k8s_settings import load_settings, settings_from_cluster
from audioflow.launch.kubernetes import KubernetesLauncher
from audioflow.launch.torchrun import failure_status

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TEAM = """\
# test team
clusters:
  local:
    xp_root: {xp_root}
  kubernetes:
    xp_root: {xp_root}
    kubernetes:
      namespace: speech
      image: registry.example/audioflow:2
      pvc: speech-shared
      mount_path: /mnt/speech
      node_selector: {{pool: h100}}
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
      shm_size: 16Gi
      secret_env: [{{name: AWS_ACCESS_KEY_ID, secret: s3, key: id}}]
      metrics_port: 9300
      backoff_limit: 5
      start_timeout: 600
      run_timeout: 86400
      queue: gpu
      rdma: {{resources: {{rdma/ib: 2}}}}
      env: {{NCCL_IB_HCA: mlx5, AUDIOFLOW_TEAM: not-this-one}}
"""


@pytest.fixture
def team_env(use_team):
    return use_team(TEAM)


def test_settings_come_from_the_kubernetes_cluster_of_the_team(team_env):
    settings = load_settings()
    assert settings.namespace == "speech" and settings.image == "registry.example/audioflow:2"
    assert (settings.pvc, settings.mount_path) == ("speech-shared", "/mnt/speech")
    assert settings.node_selector == {"pool": "h100"}
    assert settings.tolerations[0]["key"] == "nvidia.com/gpu"
    assert settings.secret_env[0].secret == "s3" and settings.metrics_port == 9300
    assert settings.backoff_limit == 5
    assert (settings.start_timeout, settings.run_timeout, settings.queue) == (600, 86400, "gpu")
    assert settings.rdma_resources == {"rdma/ib": "2"}
    assert settings.env["NCCL_IB_HCA"] == "mlx5" and settings.shm_mib == 16 * 1024
    # Pods select the same cluster entry as the process that submitted them.
    assert settings.env["AUDIOFLOW_CLUSTER"] == "kubernetes"
    assert settings.env["AUDIOFLOW_TEAM"] != "not-this-one"  # the selection wins
    assert "AUDIOFLOW_CLUSTER" not in os.environ


def test_shipped_default_team_has_a_usable_kubernetes_cluster(monkeypatch):
    monkeypatch.delenv("AUDIOFLOW_CONFIG", raising=False)
    monkeypatch.delenv("AUDIOFLOW_TEAM", raising=False)
    monkeypatch.setenv("AUDIOFLOW_CLUSTER", "kubernetes")
    settings = load_settings()
    assert settings.pvc == "audioflow-shared"  # the claim of k8s/pvc.yaml
    # The stage pods' account of k8s/rbac.yaml: no rights (the launcher's is `audioflow`).
    assert settings.service_account == "audioflow-stage"
    pvc = yaml.safe_load((REPO / "k8s/pvc.yaml").read_text())
    assert settings.namespace == pvc["metadata"]["namespace"]


@pytest.mark.parametrize(
    "kube,needle",
    [
        ({}, "kubernetes.image is not set"),
        ({"image": "x:1", "secret_env": [{"name": "A"}]}, "kubernetes.secret_env[0]"),
        ({"image": "x:latest"}, "'x:latest' uses :latest; name a version tag or a digest"),
        ({"image": "registry:5000/x"}, "'registry:5000/x' has no tag"),
        ({"image": "x:1", "start_timout": 60}, "kubernetes.start_timout of cluster"),
        ({"image": "x:1", "shm_size": "lots"}, "kubernetes.shm_size of cluster"),
        ({"image": "x:1", "start_timeout": -1}, "kubernetes.start_timeout of cluster"),
        ({"image": "x:1", "rdma": {"resources": {}}}, "kubernetes.rdma.resources of"),
        ({"image": "x:1", "env": ["NCCL_DEBUG=INFO"]}, "kubernetes.env of cluster"),
    ],
)
def test_bad_settings_name_the_key(kube, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        settings_from_cluster({"cluster": "kubernetes", "kubernetes": kube})


def test_registry_builds_the_kubernetes_launcher():
    assert isinstance(get_launcher("kubernetes"), KubernetesLauncher)


def test_launcher_without_image_exits_2_with_one_line(team_env, tmp_path, capsys):
    (tmp_path / "team.yaml").write_text("clusters:\n  kubernetes:\n    kubernetes: {}\n")
    from audioflow.launch.base import JobSpec

    status = KubernetesLauncher().launch(JobSpec(name="af-x-train-1", args=["run"]))
    assert status == CONFIG_ERROR_EXIT_CODE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "kubernetes.image is not set" in err


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "audioflow.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_render_prints_valid_manifests_for_an_existing_xp(team_env):
    from audioflow.config import get_xp

    # Any shipped compression solver config will do: only the overrides matter here.
    solver = sorted((REPO / "config/solver/compression").glob("*.yaml"))[0].stem
    xp = get_xp([f"solver=compression/{solver}", "optim.lr=0.002"])
    out = run_cli("k8s", "render", xp.sig, "train", "4", "--nodes", "2", "--gpus", "8")
    assert out.returncode == 0, out.stderr
    job, *dependents = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in dependents] == ["Service", "NetworkPolicy"]
    for obj in (job, *dependents):
        kubernetes_validate.validate(obj, "1.30", strict=True)
    # Applied by hand nothing owns the dependents: the output says how to remove them all.
    label = f"audioflow.io/job={job['metadata']['name']}"
    cleanup = f"kubectl -n speech delete job,service,networkpolicy -l {label}"
    assert out.stdout.startswith("# ") and cleanup in out.stdout.splitlines()[1]
    assert cleanup in out.stderr
    assert job["metadata"]["name"] == f"af-{xp.sig}-train-4"
    assert job["metadata"]["namespace"] == "speech"
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "optim.lr=0.002" in command and command[-4:] == ["--stage", "train", "--epoch", "4"]
    assert "--nproc-per-node=8" in command


def test_render_of_an_unknown_xp_exits_2_with_one_line(team_env):
    out = run_cli("k8s", "render", "deadbeef", "valid", "1")
    assert out.returncode == CONFIG_ERROR_EXIT_CODE
    assert out.stdout == "" and out.stderr.strip().count("\n") == 0 and "deadbeef" in out.stderr


def test_pod_command_exits_2_on_a_stage_config_error(tmp_path):
    """The rendered pod command, run here: real torchrun and `audioflow run` on CPU.

    A misspelt override makes the stage exit 2; plain torchrun would report 1, and the
    podFailurePolicy would retry the Job instead of failing it at once.
    """
    from audioflow.launch.base import JobSpec
    from audioflow.launch.k8s_settings import KubernetesSettings
    from audioflow.launch.manifests import render_job

    job = JobSpec(
        name="af-x-train-1", args=["run", "optim.lrr=1", "--stage", "train", "--epoch", "1"]
    )
    rendered = render_job(job, KubernetesSettings(image="x:1", metrics_port=9200))
    command = rendered["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "python" and "monitoring.port=9200" in command
    env = dict(os.environ, OMP_NUM_THREADS="1", AUDIOFLOW_XP_DIR=str(tmp_path / "xps"))
    env["PATH"] = f"{BIN}:{env['PATH']}"
    out = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == CONFIG_ERROR_EXIT_CODE, out.stderr[-2000:]
    assert "optim.lrr" in out.stderr


@pytest.mark.parametrize(
    "codes,status", [([2], 2), ([1, 2], 2), ([3], 3), ([-9, 1], 137), ([-15], 143), ([], 1)]
)
def test_failure_status_keeps_the_config_error_else_the_first_code(codes, status):
    assert failure_status(codes) == status


def test_profile_selects_the_kubernetes_launcher(tmp_path):
    """`snakemake --profile k8s` with the shipped profile, on a one-rule workflow."""
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s/config.yaml").write_text((REPO / "k8s/config.yaml").read_text())
    (tmp_path / "Snakefile").write_text(
        'config.setdefault("launcher", "local")\n'
        "rule train:\n"
        '    output: "train.txt"\n'
        "    threads: 1\n"
        "    resources: gpu=0, nodes=1, nproc_per_node=1, mem_mb=1000\n"
        '    shell: "echo {config[launcher]} {resources.gpu} {resources.nodes} {threads}'
        ' > {output}"\n'
    )
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    out = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "k8s", "--set-resources", "train:nodes=2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    launcher, gpu, nodes, threads = (tmp_path / "train.txt").read_text().split()
    assert launcher == "kubernetes" and nodes == "2"
    assert int(threads) == 8  # the profile's set-threads, not cut to this machine's cores


def test_dockerfile_copies_what_exists_and_runs_as_the_manifests_user():
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("#")
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert re.search(r"^USER 1000(:1000)?$", text, re.M)  # numeric: runAsNonRoot can verify it
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_controller_command_plans_the_real_workflow_on_kubernetes(tmp_path):
    """The in-cluster controller's snakemake command, dry-run on this repository's workflow."""
    controller = yaml.safe_load((REPO / "k8s/controller-job.yaml").read_text())
    script = controller["spec"]["template"]["spec"]["containers"][0]["args"][0]
    command = script.split("exec ", 1)[1]
    command = command.replace("/opt/audioflow", str(REPO))
    command = command.replace("/etc/audioflow/workflow.yaml", str(REPO / "config/workflow.yaml"))
    argv = command.split()
    argv[0] = str(BIN / "snakemake")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", AUDIOFLOW_XP_DIR=str(tmp_path / "x"))
    env.pop("AUDIOFLOW_CLUSTER", None)
    out = subprocess.run(
        [*argv, "--dry-run", "--directory", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    launches = [line for line in out.stdout.splitlines() if "audioflow launch" in line]
    assert launches and all("--launcher kubernetes" in line for line in launches)
    train = [line for line in launches if "--label stage=train" in line]
    assert train and all("--gpus 1" in line and "--threads 8" in line for line in train)


@pytest.mark.slow
def test_rendered_two_node_command_rendezvous_over_tcp(tmp_path):
    """Both nodes' rendered torchrun commands, run here as two processes on 127.0.0.1.

    The pod's DNS name of node 0 becomes 127.0.0.1 and the stage becomes a script doing a
    gloo all-reduce: the node ranks, node count and master address must be right for it
    to finish with the sum over all 4 processes.
    """
    import socket

    from audioflow.launch.base import JobSpec
    from audioflow.launch.k8s_settings import KubernetesSettings
    from audioflow.launch.manifests import render_job

    job = JobSpec(name="af-1a2b3c4d-train-1", args=["run"], nodes=2, nproc_per_node=2)
    rendered = render_job(job, KubernetesSettings(image="x:1", metrics_port=0))
    command = rendered["spec"]["template"]["spec"]["containers"][0]["command"]
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import os, torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([float(dist.get_rank() + 1)])\n"
        "dist.all_reduce(t)\n"
        "open(os.path.join(os.path.dirname(__file__), f'sum{dist.get_rank()}'), 'w')"
        ".write(str(int(t.item())))\n"
        "dist.destroy_process_group()\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    master = next(a for a in command if a.startswith("--master-addr="))
    procs = []
    for index in range(2):
        argv = [sys.executable if a == "python" else a for a in command[: command.index("-m", 3)]]
        argv = [a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in argv]
        argv = ["--master-addr=127.0.0.1" if a == master else a for a in argv]
        argv = [f"--master-port={port}" if a.startswith("--master-port=") else a for a in argv]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([*argv, str(worker)], env=env, stderr=subprocess.PIPE))
    for proc in procs:
        assert proc.wait(timeout=180) == 0, proc.stderr.read().decode()[-2000:]
    assert [(tmp_path / f"sum{r}").read_text() for r in range(4)] == ["10"] * 4
