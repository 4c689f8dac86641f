"""Kubernetes manifests of a stage job: an Indexed Job, a headless Service, a NetworkPolicy.

Every node of a job is one pod of an Indexed Job (completions = parallelism = nodes). The
Job controller names pod ``i`` ``<job>-<i>`` and, with ``subdomain`` set to the headless
Service, DNS resolves ``<job>-0.<job>`` to pod 0: the torchrun master. Pods read their
node rank from ``JOB_COMPLETION_INDEX``. No operator is needed, only the Job API. The
NetworkPolicy admits the rendezvous and peer ports only from the job's own pods and the
metrics port only from Prometheus.

All functions are pure: plain arguments in, JSON-ready dicts out.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from typing import Any

from .base import CONFIG_ERROR_EXIT_CODE, PEER_LOST_EXIT_CODE, JobSpec
from .k8s_settings import RDMA_CAPABILITIES, KubernetesSettings
from .peers import PEER_PORT_OFFSET
from .torchrun import PEER_JOIN_ENV

APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "audioflow"
JOB_LABEL = "audioflow.io/job"
LABEL_PREFIX = "audioflow.io/"
# Names the workflow's short label keys with the longer label names users query by.
LABEL_ALIASES = {"sig": "signature"}
CONTAINER = "trainer"
MASTER_PORT = 29500  # the port JobSpec.torchrun_args gives torchrun
PEER_PORT = MASTER_PORT + PEER_PORT_OFFSET  # audioflow.launch.peers' heartbeat links
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# Writable places in a pod whose root filesystem is read-only (HOME: caches of torch,
# triton, matplotlib).
TMP_DIR = "/tmp"
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


def escape_expansion(arg: str) -> str:
    """``arg`` as the kubelet must pass it on: ``$`` doubled.

    The kubelet expands ``$(VAR)`` in a container's command from its env, and turns
    ``$$`` into ``$``: an override such as ``+note='$(JOB_COMPLETION_INDEX)'`` would
    otherwise reach each node differently, giving each node another signature.
    """
    return arg.replace("$", "$$")


def container_command(job: JobSpec, name: str, metrics_port: int) -> list[str]:
    """The command of every pod: torchrun through audioflow's exit-status-keeping wrapper.

    torchrun itself exits 1 whatever its workers returned; ``audioflow.launch.torchrun``
    keeps a worker's exit status (the configuration-error one, which the podFailurePolicy
    fails fast on) and says when a peer node was lost. ``$(JOB_COMPLETION_INDEX)`` is
    expanded by the kubelet from the container's env; every ``$`` of the job's own
    arguments is escaped.
    """
    args = stage_args(job.args, job.gpus_per_node, metrics_port)
    run = JobSpec(
        name=job.name,
        args=[escape_expansion(a) for a in args],
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
        {"name": "HOME", "value": TMP_DIR},
        {"name": "TMPDIR", "value": TMP_DIR},
    ]
    if job.nodes > 1:
        # Peers wait for node 0 as long as the launcher waits for every pod to start.
        join = settings.start_timeout or 600
        env.append({"name": PEER_JOIN_ENV, "value": str(join)})
    ours = {e["name"] for e in env}
    env += [{"name": k, "value": v} for k, v in sorted(settings.env.items()) if k not in ours]
    env += [
        {"name": s.name, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
        for s in settings.secret_env
    ]
    return env


def _container(job: JobSpec, name: str, settings: KubernetesSettings) -> dict[str, Any]:
    # A memory-backed /dev/shm is charged to the pod's memory: it is added to what the
    # processes are given, so filling it does not get them OOM-killed.
    memory = f"{job.mem_mb + settings.shm_mib}Mi"
    resources: dict[str, Any] = {
        "requests": {"cpu": str(job.threads), "memory": memory},
        # No CPU limit: throttling slows data loading and buys nothing on a dedicated node.
        "limits": {"memory": memory},
    }
    if job.gpus_per_node > 0:
        resources["limits"]["nvidia.com/gpu"] = str(job.gpus_per_node)
    for resource, count in sorted(settings.rdma_resources.items()):
        resources["limits"][resource] = count
    capabilities: dict[str, Any] = {"drop": ["ALL"]}
    if settings.rdma_resources:
        # Registering RDMA memory pins it (memlock): without IPC_LOCK, NCCL falls back
        # to TCP sockets or fails. The Pod Security `restricted` level refuses it.
        capabilities["add"] = list(RDMA_CAPABILITIES)
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": TMP_DIR}]
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
            "capabilities": capabilities,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
        },
    }
    ports = [
        {"name": "rendezvous", "containerPort": MASTER_PORT, "protocol": "TCP"},
        {"name": "peers", "containerPort": PEER_PORT, "protocol": "TCP"},
    ]
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
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": shm},
        {"name": "tmp", "emptyDir": {}},
    ]
    if settings.pvc and settings.mount_path:
        volumes.append({"name": "shared", "persistentVolumeClaim": {"claimName": settings.pvc}})
    return volumes


def pod_failure_policy() -> dict[str, Any]:
    """Preemptions and evictions cost nothing; configuration errors end the Job at once.

    Rules apply in order, first match wins: a disrupted pod is replaced without touching
    ``backoffLimit``, and so is a node that only lost a peer (``PEER_LOST_EXIT_CODE``:
    preempted, or failed first for its own reason, which that node's pod counts), so the
    gang restarts whole; a trainer exiting with the configuration-error code fails the Job
    at once, since running it again cannot help.
    """
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "Ignore",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [PEER_LOST_EXIT_CODE],
                },
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
        # Training code has no business with the API: no token in the pod, whatever
        # the ServiceAccount (the launcher's account can create Jobs).
        "automountServiceAccountToken": False,
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
    job_labels_ = dict(labels)
    if settings.queue:
        job_labels_[KUEUE_QUEUE_LABEL] = settings.queue
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": job.nodes,
        "parallelism": job.nodes,
        # A failed attempt counts once: the other nodes exit peer-lost, which is ignored.
        "backoffLimit": settings.backoff_limit,
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
    }
    if settings.run_timeout:
        spec["activeDeadlineSeconds"] = settings.run_timeout
    if settings.queue:
        # Kueue admits a suspended Job when all of its pods fit, then unsuspends it.
        spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": job_labels_,
            "annotations": {"audioflow.io/command": shlex.join(job.args)},
        },
        "spec": {
            **spec,
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


def _owned_metadata(job: JobSpec, settings: KubernetesSettings, owner_uid: str | None) -> dict:
    """Metadata of an object that belongs to the job's Job (when its uid is known)."""
    name = job_name(job.name)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": job_labels(job, name),
    }
    if owner_uid:
        # blockOwnerDeletion: a foreground delete of the Job waits for this object too.
        metadata["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": name,
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return metadata


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
    metadata = _owned_metadata(job, settings, owner_uid)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: name},
            # Workers look the master up while it starts, before any readiness.
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT},
                {"name": "peers", "port": PEER_PORT, "targetPort": PEER_PORT},
            ],
        },
    }


def render_network_policy(
    job: JobSpec, settings: KubernetesSettings, owner_uid: str | None = None
) -> dict[str, Any]:
    """Ingress of the job's pods: torchrun's ports from each other, metrics from Prometheus.

    Anything else is refused (a NetworkPolicy selecting a pod denies what it does not
    admit). Enforced only where the cluster's network plugin implements NetworkPolicy.

    Args:
        job: the job whose pods it selects.
        settings: cluster-wide settings (the metrics port, where Prometheus runs).
        owner_uid: uid of the submitted Job, which then owns the policy.

    Returns:
        A ``networking.k8s.io/v1`` NetworkPolicy as a dict.
    """
    name = job_name(job.name)
    own_pods = {"podSelector": {"matchLabels": {JOB_LABEL: name}}}
    ingress: list[dict[str, Any]] = [
        {
            "from": [own_pods],
            "ports": [{"protocol": "TCP", "port": p} for p in (MASTER_PORT, PEER_PORT)],
        }
    ]
    if settings.metrics_port:
        prometheus = {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": settings.prometheus_namespace}
            },
            "podSelector": {"matchLabels": dict(settings.prometheus_labels)},
        }
        ingress.append(
            {"from": [prometheus], "ports": [{"protocol": "TCP", "port": settings.metrics_port}]}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _owned_metadata(job, settings, owner_uid),
        "spec": {
            "podSelector": own_pods["podSelector"],
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def render_dependents(
    job: JobSpec, settings: KubernetesSettings, owner_uid: str | None = None
) -> list[dict[str, Any]]:
    """The objects created next to the Job and owned by it: Service, NetworkPolicy."""
    return [
        render_service(job, settings, owner_uid),
        render_network_policy(job, settings, owner_uid),
    ]


def render_manifests(job: JobSpec, settings: KubernetesSettings) -> list[dict[str, Any]]:
    """The Job and its dependents, in the order the launcher creates them."""
    return [render_job(job, settings), *render_dependents(job, settings)]


def cleanup_command(job: JobSpec, settings: KubernetesSettings) -> str:
    """The one command that removes what ``render_manifests`` gives, once the Job is done.

    Applied by hand, the dependents have no owner (the Job's uid is only known once it
    exists), so the Job's deletion or TTL does not remove them.
    """
    kinds = ",".join(obj["kind"].lower() for obj in render_manifests(job, settings))
    name = job_name(job.name)
    return f"kubectl -n {settings.namespace} delete {kinds} -l {JOB_LABEL}={name}"
