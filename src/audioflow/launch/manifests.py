"""Kubernetes manifests of a stage job: an Indexed Job plus a headless Service.

Every node of a job is one pod of an Indexed Job (completions = parallelism = nodes). The
Job controller names pod ``i`` ``<job>-<i>`` and, with ``subdomain`` set to the headless
Service, DNS resolves ``<job>-0.<job>`` to pod 0: the torchrun master. Pods read their
node rank from ``JOB_COMPLETION_INDEX``. No operator is needed, only the Job API.

All functions are pure: plain arguments in, JSON-ready dicts out.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from typing import Any

from .base import CONFIG_ERROR_EXIT_CODE, JobSpec
from .k8s_settings import KubernetesSettings

APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "audioflow"
JOB_LABEL = "audioflow.io/job"
LABEL_PREFIX = "audioflow.io/"
# Names the workflow's short label keys with the longer label names users query by.
LABEL_ALIASES = {"sig": "signature"}
CONTAINER = "trainer"
MASTER_PORT = 29500  # the port JobSpec.torchrun_args gives torchrun
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# The Job controller names pod i's host `<job>-<i>` (a DNS label, at most 63 characters),
# so the job name leaves room for "-" and an index of up to six digits.
MAX_NAME_LENGTH = 56
_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")


def job_name(name: str) -> str:
    """A DNS-1035 label for ``name``: deterministic, lowercase, at most 56 characters.

    Names that had to be shortened or changed keep a hash of the original, so two
    different names never collide after cleaning.

    Args:
        name: the job name the workflow chose (e.g. ``af-1a2b3c4d-train-3``).

    Returns:
        The name used for the Job, its Service and its pods' hostnames.
    """
    clean = _INVALID.sub("-", name.lower()).strip("-")
    if not clean or not clean[0].isalpha():
        clean = f"af-{clean}".rstrip("-")
    if clean == name and len(clean) <= MAX_NAME_LENGTH:
        return clean
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{clean[: MAX_NAME_LENGTH - 9].rstrip('-')}-{digest}"


def label_value(value: object) -> str:
    """``value`` as a valid label value (at most 63 characters, alphanumeric at both ends)."""
    clean = _LABEL_INVALID.sub("-", str(value))[:63]
    return clean.strip("-_.")


def job_labels(job: JobSpec, name: str) -> dict[str, str]:
    """Labels of every object of a job: app, job name, and the job's own labels.

    ``--label sig=1a2b3c4d`` becomes ``audioflow.io/signature: 1a2b3c4d`` so that
    ``kubectl get pods -l audioflow.io/signature=1a2b3c4d`` lists an XP's pods.
    """
    labels = {APP_LABEL: APP_NAME, "app.kubernetes.io/managed-by": APP_NAME, JOB_LABEL: name}
    for key, value in sorted(job.labels.items()):
        key = LABEL_ALIASES.get(key, key)
        labels[LABEL_PREFIX + label_value(key).lower()] = label_value(value)
    return labels


def stage_args(args: list[str], gpus_per_node: int, metrics_port: int) -> list[str]:
    """The stage's ``audioflow`` arguments with what running in a pod implies.

    ``run`` gets ``device=cuda`` on GPU pods and ``monitoring.port=<port>`` so that the
    PodMonitor finds the metrics on the container's ``metrics`` port. The cluster wins: an
    override of the same key is replaced (a ``device=cpu`` would leave the GPUs idle, a
    different port would be scraped by nobody). Both keys are excluded from signatures,
    so the XP stays the same one.
    """
    if not args or args[0] != "run":
        return list(args)
    # Overrides come right after `run`, before its options (the contract of every rule).
    end = next((i for i, a in enumerate(args) if i and a.startswith("-")), len(args))
    overrides, options = args[1:end], args[end:]
    extra = []
    if gpus_per_node > 0:
        extra.append("device=cuda")
        overrides = [a for a in overrides if _override_key(a) != "device"]
    if metrics_port:
        extra.append(f"monitoring.port={metrics_port}")
        overrides = [a for a in overrides if _override_key(a) != "monitoring.port"]
    return [args[0], *extra, *overrides, *options]


def _override_key(override: str) -> str:
    """The key a Hydra override sets or deletes: ``+key=v``, ``++key=v``, ``~key``."""
    return override.split("=", 1)[0].lstrip("+~")


def container_command(job: JobSpec, name: str, metrics_port: int) -> list[str]:
    """The command of every pod: torchrun through audioflow's exit-status-keeping wrapper.

    torchrun itself exits 1 whatever its workers returned; ``audioflow.launch.torchrun``
    keeps a worker's configuration-error status, which the podFailurePolicy fails fast on.
    ``$(JOB_COMPLETION_INDEX)`` is expanded by the kubelet from the container's env.
    """
    run = JobSpec(
        name=job.name,
        args=stage_args(job.args, job.gpus_per_node, metrics_port),
        nodes=job.nodes,
        nproc_per_node=job.nproc_per_node,
    )
    master = f"{name}-0.{name}" if job.nodes > 1 else None
    node_rank = "$(JOB_COMPLETION_INDEX)" if job.nodes > 1 else None
    torchrun = run.torchrun_args(node_rank=node_rank, master=master)
    return ["python", "-m", "audioflow.launch.torchrun", *torchrun[1:]]


def _env(job: JobSpec, settings: KubernetesSettings) -> list[dict[str, Any]]:
    threads = max(1, job.threads // max(1, job.nproc_per_node))
    env: list[dict[str, Any]] = [
        # The controller adds this too, but only a variable declared here is guaranteed
        # to be expanded in the command by the kubelet.
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}},
        },
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "OMP_NUM_THREADS", "value": str(threads)},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(settings.env.items())]
    env += [
        {"name": s.name, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
        for s in settings.secret_env
    ]
    return env


def _container(job: JobSpec, name: str, settings: KubernetesSettings) -> dict[str, Any]:
    memory = f"{job.mem_mb}Mi"
    resources: dict[str, Any] = {
        "requests": {"cpu": str(job.threads), "memory": memory},
        # No CPU limit: throttling slows data loading and buys nothing on a dedicated node.
        "limits": {"memory": memory},
    }
    if job.gpus_per_node > 0:
        resources["limits"]["nvidia.com/gpu"] = str(job.gpus_per_node)
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if settings.pvc and settings.mount_path:
        mounts.append({"name": "shared", "mountPath": settings.mount_path})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "command": container_command(job, name, settings.metrics_port),
        "env": _env(job, settings),
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }
    ports = [{"name": "rendezvous", "containerPort": MASTER_PORT, "protocol": "TCP"}]
    if settings.metrics_port:
        ports.append({"name": "metrics", "containerPort": settings.metrics_port, "protocol": "TCP"})
    container["ports"] = ports
    if settings.mount_path:
        container["workingDir"] = settings.mount_path
    if settings.image_pull_policy:
        container["imagePullPolicy"] = settings.image_pull_policy
    return container


def _volumes(settings: KubernetesSettings) -> list[dict[str, Any]]:
    shm: dict[str, Any] = {"medium": "Memory"}
    if settings.shm_size:
        shm["sizeLimit"] = settings.shm_size
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": shm}]
    if settings.pvc and settings.mount_path:
        volumes.append({"name": "shared", "persistentVolumeClaim": {"claimName": settings.pvc}})
    return volumes


def pod_failure_policy() -> dict[str, Any]:
    """Preemptions and evictions do not count as failures; configuration errors end the Job.

    Rules apply in order, first match wins: a disrupted pod is replaced without touching
    ``backoffLimit``; a trainer exiting with the configuration-error code fails the Job at
    once, since running it again cannot help.
    """
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [CONFIG_ERROR_EXIT_CODE],
                },
            },
        ]
    }


def render_job(job: JobSpec, settings: KubernetesSettings) -> dict[str, Any]:
    """The Indexed Job running ``job`` on ``job.nodes`` pods.

    Args:
        job: what to run and with which resources.
        settings: cluster-wide scheduling settings.

    Returns:
        A ``batch/v1`` Job as a dict.
    """
    name = job_name(job.name)
    labels = job_labels(job, name)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # required by podFailurePolicy; the Job replaces pods
        "subdomain": name,
        "containers": [_container(job, name, settings)],
        "volumes": _volumes(settings),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {"audioflow.io/command": shlex.join(job.args)},
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": job.nodes,
            "parallelism": job.nodes,
            # One failed attempt of a multi-node job fails every node's pod.
            "backoffLimit": settings.backoff_limit * job.nodes,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "podFailurePolicy": pod_failure_policy(),
            # A replacement pod starts only once the old one is gone, so two pods never
            # hold the same hostname (and torchrun rank) at once.
            "podReplacementPolicy": "Failed",
            "template": {
                "metadata": {
                    "labels": dict(labels),  # a copy: YAML output without anchors
                    "annotations": {"kubectl.kubernetes.io/default-container": CONTAINER},
                },
                "spec": pod_spec,
            },
        },
    }


def render_service(
    job: JobSpec, settings: KubernetesSettings, owner_uid: str | None = None
) -> dict[str, Any]:
    """The headless Service giving the job's pods stable DNS names.

    Args:
        job: the job the Service belongs to.
        settings: cluster-wide scheduling settings.
        owner_uid: uid of the submitted Job; when given the Service is owned by it, so
            deleting the Job (or its TTL expiring) removes the Service too.

    Returns:
        A ``v1`` Service as a dict.
    """
    name = job_name(job.name)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": job_labels(job, name),
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": owner_uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: name},
            # Workers look the master up while it starts, before any readiness.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
        },
    }


def render_manifests(job: JobSpec, settings: KubernetesSettings) -> list[dict[str, Any]]:
    """The Job and its Service, in the order the launcher creates them."""
    return [render_job(job, settings), render_service(job, settings)]
