"""Rendered manifests and the shipped k8s/ files against the official Kubernetes schemas.

kubernetes-validate checks every object strictly (unknown fields rejected) against the
OpenAPI schemas of Kubernetes 1.30 and of the newest version it bundles. The Snakemake
profile (k8s/config.yaml) and k8s/monitoring/ (a Prometheus Operator PodMonitor, a CRD
these schemas do not hold, and a Grafana dashboard) are not Kubernetes objects and are
skipped; any other CRD is skipped by name below.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from audioflow.launch.base import CONFIG_ERROR_EXIT_CODE, PEER_LOST_EXIT_CODE, JobSpec
from audioflow.launch.k8s_settings import KubernetesSettings, SecretEnv
from audioflow.launch.manifests import (
    JOB_LABEL,
    KUEUE_QUEUE_LABEL,
    MASTER_PORT,
    PEER_PORT,
    cleanup_command,
    job_name,
    render_dependents,
    render_job,
    render_manifests,
    render_network_policy,
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
    service_account="audioflow-stage",
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
# InfiniBand, Kueue, a run deadline and NCCL settings from the team file.
RDMA_CLUSTER = KubernetesSettings(
    namespace="audioflow-ib",
    image="ghcr.io/example/audioflow@sha256:" + "0" * 64,
    shm_size="16Gi",
    rdma_resources={"rdma/ib": "1"},
    queue="gpu-queue",
    run_timeout=7 * 24 * 3600,
    env={"NCCL_IB_HCA": "mlx5", "NCCL_SOCKET_IFNAME": "eth0"},
)
UID = "0c9a7b1e-0000-4000-8000-000000000001"


def validate(obj: dict) -> None:
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("job", [TRAIN_2x8, VALID_CPU], ids=["train-2x8gpu", "valid-cpu"])
@pytest.mark.parametrize(
    "settings", [GPU_CLUSTER, MINIMAL_CLUSTER, RDMA_CLUSTER], ids=["gpu", "minimal", "rdma"]
)
def test_rendered_manifests_pass_strict_schemas(job, settings):
    manifests = render_manifests(job, settings) + render_dependents(job, settings, owner_uid=UID)
    kinds = ["Job", "Service", "NetworkPolicy", "Service", "NetworkPolicy"]
    assert [m["kind"] for m in manifests] == kinds
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
    assert container["resources"]["requests"]["cpu"] == "64"
    assert pod["nodeSelector"] == GPU_CLUSTER.node_selector
    assert pod["tolerations"] == GPU_CLUSTER.tolerations
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert volumes["shared"]["persistentVolumeClaim"]["claimName"] == "audioflow-shared"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "shared": "/mnt/audioflow", "tmp": "/tmp"}
    assert {"name": "metrics", "containerPort": 9200, "protocol": "TCP"} in container["ports"]


def test_pods_are_locked_down_and_labelled_for_monitoring():
    job = render_job(TRAIN_2x8, GPU_CLUSTER)
    template = job["spec"]["template"]
    security = template["spec"]["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    labels = template["metadata"]["labels"]
    # k8s/monitoring's PodMonitor selects pods by this label and the `metrics` port name.
    assert labels["app.kubernetes.io/name"] == "audioflow"
    assert labels["audioflow.io/signature"] == "1a2b3c4d"
    assert (labels["audioflow.io/stage"], labels["audioflow.io/epoch"]) == ("train", "12")
    assert job["metadata"]["labels"] == labels


def test_failure_policy_spares_preemptions_and_lost_peers_and_stops_config_errors():
    spec = render_job(TRAIN_2x8, GPU_CLUSTER)["spec"]
    disrupted, peer_lost, fail = spec["podFailurePolicy"]["rules"]
    assert disrupted["action"] == peer_lost["action"] == "Ignore"
    assert disrupted["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert peer_lost["onExitCodes"]["values"] == [PEER_LOST_EXIT_CODE]
    assert fail["action"] == "FailJob"
    assert fail["onExitCodes"]["values"] == [CONFIG_ERROR_EXIT_CODE]
    container = spec["template"]["spec"]["containers"][0]["name"]
    assert fail["onExitCodes"]["containerName"] == peer_lost["onExitCodes"]["containerName"]
    assert fail["onExitCodes"]["containerName"] == container
    # podFailurePolicy is only accepted with restartPolicy Never.
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # A failed attempt counts once (the other nodes exit peer-lost, which is ignored).
    assert spec["backoffLimit"] == GPU_CLUSTER.backoff_limit
    assert spec["ttlSecondsAfterFinished"] == GPU_CLUSTER.ttl_seconds_after_finished
    assert "activeDeadlineSeconds" not in spec and "suspend" not in spec


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
        "controller": True,
        "blockOwnerDeletion": True,
    }
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"rendezvous": MASTER_PORT, "peers": PEER_PORT}


def _expand(arg: str, env: dict[str, str]) -> str:
    """What the kubelet passes on for a command argument: ``$$`` -> ``$``, ``$(VAR)`` ->
    its value when VAR is defined (Kubernetes' documented expansion rules)."""
    out, i = [], 0
    while i < len(arg):
        if arg.startswith("$$", i):
            out.append("$")
            i += 2
        elif arg.startswith("$(", i) and ")" in arg[i:]:
            end = arg.index(")", i)
            name = arg[i + 2 : end]
            out.append(env.get(name, arg[i : end + 1]))
            i = end + 1
        else:
            out.append(arg[i])
            i += 1
    return "".join(out)


def test_dollar_in_the_jobs_arguments_reaches_every_node_unexpanded():
    note = "+note=$(JOB_COMPLETION_INDEX) costs $5 $$x"
    job = JobSpec(name="af-1a2b3c4d-train-1", args=["run", note, "--stage", "train"], nodes=2)
    command = render_job(job, GPU_CLUSTER)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "+note=$$(JOB_COMPLETION_INDEX) costs $$5 $$$$x" in command
    for index in ("0", "1"):
        seen = [_expand(a, {"JOB_COMPLETION_INDEX": index}) for a in command]
        assert note in seen  # the same override, hence the same signature, on every node
        assert f"--node-rank={index}" in seen  # while the node rank is still expanded


def test_stage_pods_get_no_token_and_a_pinned_image():
    for settings in (GPU_CLUSTER, MINIMAL_CLUSTER, RDMA_CLUSTER):
        pod = render_job(TRAIN_2x8, settings)["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        image = pod["containers"][0]["image"]
        assert not image.endswith(":latest") and (":" in image.split("/")[-1] or "@" in image)
    pod = render_job(TRAIN_2x8, GPU_CLUSTER)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "audioflow-stage"


def test_root_filesystem_is_read_only_with_writable_tmp_shm_and_shared_volume():
    pod = render_job(TRAIN_2x8, GPU_CLUSTER)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/tmp", "/dev/shm", "/mnt/audioflow"}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HOME"] == env["TMPDIR"] == "/tmp"  # caches (torch, triton) land there


# The Pod Security Standards' `restricted` level, as far as a pod template can break it.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def restricted_violations(pod: dict) -> list[str]:
    found = []
    pod_sc = pod.get("securityContext") or {}
    if pod_sc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile")
    for volume in pod.get("volumes") or []:
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(key)
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append("allowPrivilegeEscalation")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            found.append("runAsNonRoot")
        if sc.get("privileged"):
            found.append("privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            found.append("capabilities.drop")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"capabilities.add {caps['add']}")
        if any("hostPort" in p for p in c.get("ports") or []):
            found.append("hostPort")
    return found


def test_pods_meet_the_restricted_pod_security_level_unless_rdma_is_on():
    for settings in (GPU_CLUSTER, MINIMAL_CLUSTER):
        pod = render_job(TRAIN_2x8, settings)["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []
    controller = yaml.safe_load((REPO / "k8s/controller-job.yaml").read_text())
    assert restricted_violations(controller["spec"]["template"]["spec"]) == []
    # The check can fail: IPC_LOCK (RDMA) is beyond `restricted`, as docs/kubernetes.md says.
    rdma = render_job(TRAIN_2x8, RDMA_CLUSTER)["spec"]["template"]["spec"]
    assert restricted_violations(rdma) == ["capabilities.add ['IPC_LOCK']"]


def test_namespace_enforces_the_restricted_pod_security_level():
    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "k8s/rbac.yaml").read_text())}
    labels = docs["Namespace"]["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_network_policy_admits_torchrun_only_from_the_jobs_pods_and_metrics_from_prometheus():
    policy = render_network_policy(TRAIN_2x8, GPU_CLUSTER, owner_uid=UID)
    name = job_name(TRAIN_2x8.name)
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {JOB_LABEL: name}}
    assert spec["policyTypes"] == ["Ingress"]  # selected pods refuse all other ingress
    torchrun, metrics = spec["ingress"]
    assert torchrun["from"] == [{"podSelector": {"matchLabels": {JOB_LABEL: name}}}]
    assert sorted(p["port"] for p in torchrun["ports"]) == [MASTER_PORT, PEER_PORT]
    (prometheus,) = metrics["from"]
    assert prometheus["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert prometheus["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert metrics["ports"] == [{"protocol": "TCP", "port": GPU_CLUSTER.metrics_port}]
    assert policy["metadata"]["ownerReferences"][0]["uid"] == UID
    # Pods of the job match the policy's selector; no metrics rule without a metrics port.
    labels = render_job(TRAIN_2x8, GPU_CLUSTER)["spec"]["template"]["metadata"]["labels"]
    assert labels[JOB_LABEL] == name
    assert len(render_network_policy(TRAIN_2x8, MINIMAL_CLUSTER)["spec"]["ingress"]) == 1


def test_shm_is_added_to_the_memory_of_the_pod():
    container = render_job(TRAIN_2x8, GPU_CLUSTER)["spec"]["template"]["spec"]["containers"][0]
    memory = 512000 + 64 * 1024  # mem_mb plus the 64Gi of /dev/shm, in MiB
    assert container["resources"]["requests"]["memory"] == f"{memory}Mi"
    assert container["resources"]["limits"]["memory"] == f"{memory}Mi"
    minimal = render_job(VALID_CPU, MINIMAL_CLUSTER)["spec"]["template"]["spec"]["containers"][0]
    assert minimal["resources"]["limits"]["memory"] == f"{VALID_CPU.mem_mb}Mi"


def test_rdma_kueue_run_deadline_and_nccl_env_from_the_team():
    job = render_job(TRAIN_2x8, RDMA_CLUSTER)
    spec = job["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert container["resources"]["limits"]["rdma/ib"] == "1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["NCCL_IB_HCA"], env["NCCL_SOCKET_IFNAME"]) == ("mlx5", "eth0")
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "gpu-queue"
    assert spec["suspend"] is True  # Kueue unsuspends it once every pod fits
    assert KUEUE_QUEUE_LABEL not in spec["template"]["metadata"]["labels"]
    assert spec["activeDeadlineSeconds"] == 7 * 24 * 3600


def test_cleanup_command_names_every_rendered_kind_by_the_job_label():
    command = cleanup_command(TRAIN_2x8, GPU_CLUSTER)
    assert command == (
        "kubectl -n audioflow delete job,service,networkpolicy "
        "-l audioflow.io/job=af-1a2b3c4d-train-12"
    )
    for obj in render_manifests(TRAIN_2x8, GPU_CLUSTER):
        assert obj["metadata"]["labels"][JOB_LABEL] == "af-1a2b3c4d-train-12"


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
    all_docs = list(yaml.safe_load_all((REPO / "k8s/rbac.yaml").read_text()))
    docs = {d["kind"]: d for d in all_docs if d["metadata"]["name"] != "audioflow-stage"}
    role = docs["Role"]
    resources = sorted(r for rule in role["rules"] for r in rule["resources"])
    assert resources == [
        "events", "jobs", "jobs/finalizers", "networkpolicies", "pods", "pods/log", "services",
    ]  # fmt: skip
    assert all("*" not in rule["verbs"] for rule in role["rules"])
    binding = docs["RoleBinding"]
    assert binding["subjects"][0]["name"] == docs["ServiceAccount"]["metadata"]["name"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert len({d["metadata"].get("namespace") for k, d in docs.items() if k != "Namespace"}) == 1
    # The stage pods' account exists, mounts no token and is bound to nothing.
    accounts = [d for d in all_docs if d["kind"] == "ServiceAccount"]
    stage = next(a for a in accounts if a["metadata"]["name"] == "audioflow-stage")
    assert stage["automountServiceAccountToken"] is False
    assert all(s["name"] != "audioflow-stage" for s in binding["subjects"])


def test_no_shipped_image_is_latest_or_untagged():
    from audioflow.launch.k8s_settings import image_problem

    images = []
    for path in [*sorted((REPO / "k8s").rglob("*.yaml")), REPO / "config/teams/default.yaml"]:
        images += re.findall(r"^\s*image:\s*(\S+)", path.read_text(), re.M)
    assert len(images) >= 2
    assert [i for i in images if image_problem(i)] == []
    assert image_problem("ghcr.io/x/audioflow:latest") and image_problem("audioflow")
    assert image_problem("registry:5000/audioflow")  # a port is not a tag


def test_controller_unlocks_only_when_asked():
    controller = yaml.safe_load((REPO / "k8s/controller-job.yaml").read_text())
    container = controller["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    assert 'if [ "$AUDIOFLOW_UNLOCK" = 1 ]' in script and script.count("--unlock") == 1
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AUDIOFLOW_UNLOCK"] == "0"
    for asked, unlocks in (("1", True), ("0", False)):
        shell = script.replace("snakemake", "echo snakemake")
        out = subprocess.run(
            ["/bin/sh", "-c", shell],
            env={"AUDIOFLOW_UNLOCK": asked, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0 and ("--unlock" in out.stdout) == unlocks


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
