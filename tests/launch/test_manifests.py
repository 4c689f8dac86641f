"""Rendered manifests and the shipped k8s/ files against the official Kubernetes schemas.

kubernetes-validate checks every object strictly (unknown fields rejected) against the
OpenAPI schemas of Kubernetes 1.30 and of the newest version it bundles. The Snakemake
profile (k8s/config.yaml) and k8s/monitoring/ (a Prometheus Operator PodMonitor, a CRD
these schemas do not hold, and a Grafana dashboard) are not Kubernetes objects and are
skipped; any other CRD is skipped by name below.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from audioflow.launch.base import CONFIG_ERROR_EXIT_CODE, JobSpec
from audioflow.launch.k8s_settings import KubernetesSettings, SecretEnv
from audioflow.launch.manifests import (
    job_name,
    render_job,
    render_manifests,
    render_service,
    stage_args,
)

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
NOT_KUBERNETES_OBJECTS = {"k8s/config.yaml"}  # the Snakemake profile
CRD_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}  # not in the schemas
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

GPU_CLUSTER = KubernetesSettings(
    namespace="audioflow",
    image="ghcr.io/example/audioflow:1.0",
    service_account="audioflow",
    pvc="audioflow-shared",
    mount_path="/mnt/audioflow",
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
    tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    shm_size="64Gi",
    secret_env=[
        SecretEnv("AWS_ACCESS_KEY_ID", "s3-credentials", "access_key"),
        SecretEnv("AWS_SECRET_ACCESS_KEY", "s3-credentials", "secret_key"),
    ],
    metrics_port=9200,
    env={"AUDIOFLOW_TEAM": "default", "AUDIOFLOW_CLUSTER": "kubernetes"},
)
TRAIN_2x8 = JobSpec(
    name="af-1a2b3c4d-train-12",
    args=["run", "solver=compression/default", "--stage", "train", "--epoch", "12"],
    nodes=2,
    nproc_per_node=8,
    gpus_per_node=8,
    threads=64,
    mem_mb=512000,
    labels={"sig": "1a2b3c4d", "stage": "train", "epoch": "12"},
)
VALID_CPU = JobSpec(
    name="af-1a2b3c4d-valid-12",
    args=["run", "solver=compression/default", "--stage", "valid", "--epoch", "12"],
    labels={"sig": "1a2b3c4d", "stage": "valid", "epoch": "12"},
)
MINIMAL_CLUSTER = KubernetesSettings(image="audioflow:dev", metrics_port=0)


def validate(obj: dict) -> None:
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("job", [TRAIN_2x8, VALID_CPU], ids=["train-2x8gpu", "valid-cpu"])
@pytest.mark.parametrize("settings", [GPU_CLUSTER, MINIMAL_CLUSTER], ids=["gpu", "minimal"])
def test_rendered_manifests_pass_strict_schemas(job, settings):
    manifests = render_manifests(job, settings)
    manifests.append(
        render_service(job, settings, owner_uid="0c9a7b1e-0000-4000-8000-000000000001")
    )
    assert [m["kind"] for m in manifests] == ["Job", "Service", "Service"]
    for obj in manifests:
        validate(obj)


def test_validation_catches_a_wrong_field():
    """The check itself must be able to fail: a misspelt field is rejected."""
    job = render_job(VALID_CPU, MINIMAL_CLUSTER)
    job["spec"]["completionsMode"] = "Indexed"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


def test_two_node_training_job_runs_torchrun_on_every_node():
    job = render_job(TRAIN_2x8, GPU_CLUSTER)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == job["metadata"]["name"] == "af-1a2b3c4d-train-12"
    (container,) = pod["containers"]
    cmd = container["command"]
    assert cmd[:3] == ["python", "-m", "audioflow.launch.torchrun"]
    assert "--nnodes=2" in cmd and "--nproc-per-node=8" in cmd
    assert "--node-rank=$(JOB_COMPLETION_INDEX)" in cmd
    # Pod 0's stable DNS name: <job>-<index>.<subdomain>.
    assert "--master-addr=af-1a2b3c4d-train-12-0.af-1a2b3c4d-train-12" in cmd
    env = {e["name"]: e for e in container["env"]}
    index_ref = env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert "batch.kubernetes.io/job-completion-index" in index_ref
    assert env["OMP_NUM_THREADS"]["value"] == "8"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-credentials",
        "key": "secret_key",
    }
    assert "value" not in env["AWS_ACCESS_KEY_ID"]  # by reference only, never copied in
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert container["resources"]["requests"] == {"cpu": "64", "memory": "512000Mi"}
    assert pod["nodeSelector"] == GPU_CLUSTER.node_selector
    assert pod["tolerations"] == GPU_CLUSTER.tolerations
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert volumes["shared"]["persistentVolumeClaim"]["claimName"] == "audioflow-shared"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "shared": "/mnt/audioflow"}
    assert {"name": "metrics", "containerPort": 9200, "protocol": "TCP"} in container["ports"]


def test_pods_are_locked_down_and_labelled_for_monitoring():
    job = render_job(TRAIN_2x8, GPU_CLUSTER)
    template = job["spec"]["template"]
    security = template["spec"]["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    labels = template["metadata"]["labels"]
    # k8s/monitoring's PodMonitor selects pods by this label and the `metrics` port name.
    assert labels["app.kubernetes.io/name"] == "audioflow"
    assert labels["audioflow.io/signature"] == "1a2b3c4d"
    assert (labels["audioflow.io/stage"], labels["audioflow.io/epoch"]) == ("train", "12")
    assert job["metadata"]["labels"] == labels


def test_failure_policy_spares_preemptions_and_stops_config_errors():
    spec = render_job(TRAIN_2x8, GPU_CLUSTER)["spec"]
    ignore, fail = spec["podFailurePolicy"]["rules"]
    assert ignore["action"] == "Ignore"
    assert ignore["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert fail["action"] == "FailJob"
    assert fail["onExitCodes"]["values"] == [CONFIG_ERROR_EXIT_CODE]
    assert fail["onExitCodes"]["containerName"] == spec["template"]["spec"]["containers"][0]["name"]
    # podFailurePolicy is only accepted with restartPolicy Never.
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["backoffLimit"] == GPU_CLUSTER.backoff_limit * 2
    assert spec["ttlSecondsAfterFinished"] == GPU_CLUSTER.ttl_seconds_after_finished


def test_headless_service_selects_the_jobs_pods():
    job = render_job(TRAIN_2x8, GPU_CLUSTER)
    service = render_service(TRAIN_2x8, GPU_CLUSTER, owner_uid="uid-1")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    selector = service["spec"]["selector"]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert selector and all(pod_labels[k] == v for k, v in selector.items())
    assert service["metadata"]["ownerReferences"][0] == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job["metadata"]["name"],
        "uid": "uid-1",
    }


@pytest.mark.parametrize(
    "name",
    [
        "af-1a2b3c4d-train-3",
        "af-0123abcd-generate-120",
        "1a2b3c4d-valid-1",
        "AF_Data.Manifest/train",
        "af-" + "x" * 100,
        "---",
    ],
)
def test_job_names_are_dns_labels_deterministic_and_short(name):
    clean = job_name(name)
    assert DNS_LABEL.match(clean), clean
    assert len(clean) <= 56 and len(f"{clean}-999999") <= 63  # pod hostname <job>-<index>
    assert job_name(name) == clean


def test_distinct_names_stay_distinct_after_cleaning():
    assert job_name("af-" + "x" * 100 + "-1") != job_name("af-" + "x" * 100 + "-2")
    assert job_name("AF_a") != job_name("af-a")
    assert job_name("af-1a2b3c4d-train-3") == "af-1a2b3c4d-train-3"  # clean names kept


def test_stage_args_cluster_keys_win_over_run_only_overrides():
    args = ["run", "solver=compression/default", "--stage", "train", "--epoch", "1"]
    assert stage_args(args, 8, 9200)[:4] == ["run", "device=cuda", "monitoring.port=9200", args[1]]
    # A GPU pod runs on its GPUs and serves metrics on the container's metrics port.
    mine = ["run", "device=cpu", "monitoring.port=1234", "--stage", "valid"]
    assert stage_args(mine, 8, 9200) == [
        "run", "device=cuda", "monitoring.port=9200", "--stage", "valid"
    ]  # fmt: skip
    assert stage_args(mine, 0, 0) == mine
    assert stage_args(["manifest", "data"], 8, 9200) == ["manifest", "data"]
    assert stage_args(args, 0, 0) == args


def shipped_objects() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((REPO / "k8s").rglob("*")):
        rel = path.relative_to(REPO).as_posix()
        if path.suffix not in (".yaml", ".yml") or rel in NOT_KUBERNETES_OBJECTS:
            continue
        if rel.startswith("k8s/monitoring/"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") not in CRD_KINDS:
                found.append((f"{rel}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


def test_k8s_folder_holds_the_cluster_kit():
    names = {name.split(":")[0] for name, _ in shipped_objects()}
    assert {"k8s/rbac.yaml", "k8s/pvc.yaml", "k8s/controller-job.yaml"} <= names


@pytest.mark.parametrize(
    "name,obj", shipped_objects(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_shipped_k8s_files_pass_strict_schemas(name, obj):
    validate(obj)


def test_shipped_yaml_files_start_with_a_comment():
    for path in sorted((REPO / "k8s").rglob("*.yaml")):
        assert path.read_text().startswith("#"), f"{path} must start with a comment"


def test_rbac_role_is_limited_to_what_the_launcher_uses():
    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "k8s/rbac.yaml").read_text())}
    role = docs["Role"]
    resources = sorted(r for rule in role["rules"] for r in rule["resources"])
    assert resources == ["jobs", "pods", "pods/log", "services"]
    assert all("*" not in rule["verbs"] for rule in role["rules"])
    binding = docs["RoleBinding"]
    assert binding["subjects"][0]["name"] == docs["ServiceAccount"]["metadata"]["name"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert len({d["metadata"].get("namespace") for k, d in docs.items() if k != "Namespace"}) == 1


def test_controller_uses_the_shipped_profile_and_rbac_account():
    controller = yaml.safe_load((REPO / "k8s/controller-job.yaml").read_text())
    pod = controller["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "audioflow"
    script = " ".join(pod["containers"][0]["args"])
    assert (
        "--profile /opt/audioflow/k8s" in script
        and "--snakefile /opt/audioflow/Snakefile" in script
    )
    pvc = yaml.safe_load((REPO / "k8s/pvc.yaml").read_text())
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [pvc["metadata"]["name"]]
