"""Where and how stage Jobs run on a Kubernetes cluster, as plain values.

:class:`KubernetesSettings` is what the manifest renderer and the launcher take; only
:func:`load_settings` reads the team/cluster config (``config/teams/<team>.yaml``, the
``kubernetes:`` section of the selected cluster), so everything else is testable with
plain arguments.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

# Defaults for the optional keys of a cluster's `kubernetes:` section.
DEFAULT_METRICS_PORT = 9200  # clear of node-exporter (9100), Prometheus (9090), DCGM (9400)
DEFAULT_BACKOFF_LIMIT = 2
DEFAULT_TTL_SECONDS = 24 * 3600
# All of a Job's pods must be running this long after it was submitted (or admitted by
# Kueue, or lost a pod): an image that cannot be pulled or a pod that cannot be placed
# ends the rule instead of holding it (and the GPUs already placed) forever.
DEFAULT_START_TIMEOUT = 15 * 60
# Where Prometheus runs, for the NetworkPolicy that lets it (and only it) scrape pods.
DEFAULT_PROMETHEUS_NAMESPACE = "monitoring"
DEFAULT_PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}
# What NCCL over InfiniBand/RoCE needs besides the device plugin's resources.
RDMA_CAPABILITIES = ("IPC_LOCK",)
# image[:tag][@digest]; the tag is what follows the last ':' after the last '/'.
_IMAGE = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>\S+))?$")
# The keys a cluster's `kubernetes:` section may hold (a misspelt one is refused).
KEYS = (
    "namespace image service_account pvc mount_path node_selector tolerations shm_size "
    "secret_env metrics_port backoff_limit ttl_seconds_after_finished image_pull_policy "
    "start_timeout run_timeout queue env rdma prometheus_namespace prometheus_labels"
).split()


@dataclass(frozen=True)
class SecretEnv:
    """One environment variable read from a Secret by reference (never copied in)."""

    name: str
    secret: str
    key: str


@dataclass(frozen=True)
class KubernetesSettings:
    """Scheduling settings shared by every Job of a cluster.

    Args:
        namespace: namespace of the Jobs, Services and pods.
        image: training image (see the repository's Dockerfile), by tag or digest.
        service_account: stage pods' ServiceAccount, one with no rights (None: the
            namespace default); its token is never mounted either way.
        pvc: ReadWriteMany claim holding XPs, data and references (None: no shared volume).
        mount_path: where the claim is mounted, also the pods' working directory.
        node_selector: node labels every pod requires (e.g. a GPU node pool).
        tolerations: taints the pods tolerate (e.g. ``nvidia.com/gpu``), as Kubernetes dicts.
        shm_size: size limit of the in-memory ``/dev/shm`` (data loader workers need it).
        secret_env: environment variables taken from Secrets (S3 credentials, ...).
        metrics_port: port rank 0 serves Prometheus metrics on (0: none).
        backoff_limit: failed attempts a Job tolerates before it fails (preemptions and
            the nodes that only lost a peer excluded).
        ttl_seconds_after_finished: how long a finished Job and its pods stay inspectable.
        image_pull_policy: Kubernetes imagePullPolicy (None: the cluster default).
        env: plain variables every pod gets (team and cluster selection, NCCL settings).
        start_timeout: seconds within which every pod must be running (0: no deadline).
        run_timeout: the Job's activeDeadlineSeconds (None: none).
        queue: Kueue LocalQueue; the Job is submitted suspended with Kueue's queue-name
            label, so Kueue admits all of its pods at once (None: no Kueue).
        rdma_resources: device plugin resources per pod for InfiniBand/RoCE (e.g.
            ``{"rdma/ib": "1"}``); when set the container also gets ``IPC_LOCK``.
        prometheus_namespace: namespace of the Prometheus allowed to scrape the pods.
        prometheus_labels: labels of the Prometheus pods allowed to scrape.
    """

    namespace: str = "default"
    image: str = "audioflow:0.1"
    service_account: str | None = None
    pvc: str | None = None
    mount_path: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    shm_size: str | None = None
    secret_env: list[SecretEnv] = field(default_factory=list)
    metrics_port: int = DEFAULT_METRICS_PORT
    backoff_limit: int = DEFAULT_BACKOFF_LIMIT
    ttl_seconds_after_finished: int = DEFAULT_TTL_SECONDS
    image_pull_policy: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: int = DEFAULT_START_TIMEOUT
    run_timeout: int | None = None
    queue: str | None = None
    rdma_resources: dict[str, str] = field(default_factory=dict)
    prometheus_namespace: str = DEFAULT_PROMETHEUS_NAMESPACE
    prometheus_labels: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_PROMETHEUS_LABELS)
    )

    @property
    def shm_mib(self) -> int:
        """``shm_size`` in MiB, rounded up (0 if unset)."""
        return quantity_mib(self.shm_size) if self.shm_size else 0


def quantity_mib(quantity: str) -> int:
    """A Kubernetes quantity (``8Gi``, ``500M``) in MiB, rounded up.

    Raises:
        ValueError: not a quantity.
    """
    from kubernetes.utils import parse_quantity

    return math.ceil(parse_quantity(quantity) / 2**20)


def image_problem(image: str) -> str | None:
    """Why ``image`` is not pinned (no tag or digest, or ``:latest``), or None.

    A moving tag makes the nodes of one Job, or a resumed stage, run different code.
    """
    match = _IMAGE.match(image)
    if match is None:
        return f"{image!r} is not an image reference"
    if match["digest"]:
        return None
    if not match["tag"] or "/" in match["tag"]:
        return f"{image!r} has no tag; name a version tag or a digest (@sha256:...)"
    if match["tag"] == "latest":
        return f"{image!r} uses :latest; name a version tag or a digest (@sha256:...)"
    return None


def settings_from_cluster(entry: dict) -> KubernetesSettings:
    """Turn a cluster entry (``audioflow.config.teams.cluster_config()``) into settings.

    Args:
        entry: the cluster entry; its ``kubernetes`` mapping holds the keys of
            :class:`KubernetesSettings`, ``team`` and ``cluster`` say where it came from.

    Returns:
        The settings, with ``AUDIOFLOW_TEAM``/``AUDIOFLOW_CLUSTER`` in ``env`` so that
        pods pick the same team and cluster entry as the process that submitted them.

    Raises:
        ValueError: an unknown key, a missing or unpinned image, a malformed ``secret_env``
            item or another value of the wrong kind (one line, naming it).
    """
    kube = dict(entry.get("kubernetes") or {})
    where = f"cluster '{entry.get('cluster', '?')}' in {entry.get('team_file', 'the team file')}"
    unknown = sorted(set(kube) - set(KEYS))
    if unknown:
        raise ValueError(
            f"kubernetes.{unknown[0]} of {where} is not a setting; known: {', '.join(KEYS)}"
        )
    if not kube.get("image"):
        raise ValueError(f"kubernetes.image is not set for {where}: name the training image")
    problem = image_problem(str(kube["image"]))
    if problem:
        raise ValueError(f"kubernetes.image of {where}: {problem}")
    secrets = []
    for i, item in enumerate(kube.get("secret_env") or []):
        if not isinstance(item, dict) or not {"name", "secret", "key"} <= set(item):
            raise ValueError(
                f"kubernetes.secret_env[{i}] of {where} needs name, secret and key, got {item!r}"
            )
        secrets.append(SecretEnv(str(item["name"]), str(item["secret"]), str(item["key"])))
    env = {str(k): str(v) for k, v in _mapping(kube, "env", where).items()}
    # The selection the submitting process made wins over the team's own variables.
    env["AUDIOFLOW_TEAM"] = str(entry.get("team") or "default")
    env["AUDIOFLOW_CLUSTER"] = str(entry.get("cluster") or "kubernetes")
    rdma = _mapping(kube, "rdma", where)
    if set(rdma) - {"resources"}:
        raise ValueError(f"kubernetes.rdma of {where} takes only `resources:` (name: count)")
    rdma_resources = {str(k): str(v) for k, v in (rdma.get("resources") or {}).items()}
    if rdma and not rdma_resources:
        raise ValueError(
            f"kubernetes.rdma.resources of {where} is empty; name the device plugin's "
            "resource, e.g. {rdma/ib: 1}"
        )
    shm = str(kube["shm_size"]) if kube.get("shm_size") else None
    if shm is not None:
        try:
            quantity_mib(shm)
        except ValueError:
            raise ValueError(
                f"kubernetes.shm_size of {where} is {shm!r}, not a quantity such as 8Gi"
            ) from None
    seconds = {k: _seconds(kube, k, where) for k in ("start_timeout", "run_timeout")}
    return KubernetesSettings(
        namespace=str(kube.get("namespace") or "default"),
        image=str(kube["image"]),
        service_account=kube.get("service_account") or None,
        pvc=kube.get("pvc") or None,
        mount_path=str(kube["mount_path"]) if kube.get("mount_path") else None,
        node_selector={str(k): str(v) for k, v in (kube.get("node_selector") or {}).items()},
        tolerations=[dict(t) for t in kube.get("tolerations") or []],
        shm_size=shm,
        secret_env=secrets,
        metrics_port=int(kube.get("metrics_port", DEFAULT_METRICS_PORT) or 0),
        backoff_limit=int(kube.get("backoff_limit", DEFAULT_BACKOFF_LIMIT)),
        ttl_seconds_after_finished=int(kube.get("ttl_seconds_after_finished", DEFAULT_TTL_SECONDS)),
        image_pull_policy=kube.get("image_pull_policy") or None,
        env=env,
        start_timeout=DEFAULT_START_TIMEOUT
        if seconds["start_timeout"] is None
        else seconds["start_timeout"],
        run_timeout=seconds["run_timeout"] or None,
        queue=str(kube["queue"]) if kube.get("queue") else None,
        rdma_resources=rdma_resources,
        prometheus_namespace=str(kube.get("prometheus_namespace") or DEFAULT_PROMETHEUS_NAMESPACE),
        prometheus_labels={
            str(k): str(v)
            for k, v in (
                _mapping(kube, "prometheus_labels", where) or DEFAULT_PROMETHEUS_LABELS
            ).items()
        },
    )


def _mapping(kube: dict, key: str, where: str) -> dict:
    value = kube.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"kubernetes.{key} of {where} must be a mapping, not {value!r}")
    return value


def _seconds(kube: dict, key: str, where: str) -> int | None:
    value = kube.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"kubernetes.{key} of {where} must be whole seconds >= 0, not {value!r}")
    return value


def load_settings() -> KubernetesSettings:
    """Settings of the selected team/cluster (``AUDIOFLOW_TEAM``, ``AUDIOFLOW_CLUSTER``...).

    A controller outside the cluster would select ``local``; that entry has no
    ``kubernetes`` section, so the ``kubernetes`` cluster is used unless one is named.

    Raises:
        audioflow.config.errors.ConfigError: no usable team file or cluster entry.
        ValueError: see :func:`settings_from_cluster`.
    """
    import os

    from audioflow.config.teams import cluster_config

    chosen = os.environ.get("AUDIOFLOW_CLUSTER")
    if not chosen:
        os.environ["AUDIOFLOW_CLUSTER"] = "kubernetes"
    try:
        return settings_from_cluster(cluster_config())
    finally:
        if not chosen:
            os.environ.pop("AUDIOFLOW_CLUSTER", None)
