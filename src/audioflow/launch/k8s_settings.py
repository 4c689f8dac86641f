"""Where and how stage Jobs run on a Kubernetes cluster, as plain values.

:class:`KubernetesSettings` is what the manifest renderer and the launcher take; only
:func:`load_settings` reads the team/cluster config (``config/teams/<team>.yaml``, the
``kubernetes:`` section of the selected cluster), so everything else is testable with
plain arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Defaults for the optional keys of a cluster's `kubernetes:` section.
DEFAULT_METRICS_PORT = 9200  # clear of node-exporter (9100), Prometheus (9090), DCGM (9400)
DEFAULT_BACKOFF_LIMIT = 2
DEFAULT_TTL_SECONDS = 24 * 3600


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
        image: training image (see the repository's Dockerfile).
        service_account: pods' ServiceAccount (None: the namespace default).
        pvc: ReadWriteMany claim holding XPs, data and references (None: no shared volume).
        mount_path: where the claim is mounted, also the pods' working directory.
        node_selector: node labels every pod requires (e.g. a GPU node pool).
        tolerations: taints the pods tolerate (e.g. ``nvidia.com/gpu``), as Kubernetes dicts.
        shm_size: size limit of the in-memory ``/dev/shm`` (data loader workers need it).
        secret_env: environment variables taken from Secrets (S3 credentials, ...).
        metrics_port: port rank 0 serves Prometheus metrics on (0: none).
        backoff_limit: pod failures a Job tolerates before it fails (preemptions excluded).
        ttl_seconds_after_finished: how long a finished Job and its pods stay inspectable.
        image_pull_policy: Kubernetes imagePullPolicy (None: the cluster default).
        env: plain variables every pod gets (team and cluster selection).
    """

    namespace: str = "default"
    image: str = "audioflow:latest"
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


def settings_from_cluster(entry: dict) -> KubernetesSettings:
    """Turn a cluster entry (``audioflow.config.teams.cluster_config()``) into settings.

    Args:
        entry: the cluster entry; its ``kubernetes`` mapping holds the keys of
            :class:`KubernetesSettings`, ``team`` and ``cluster`` say where it came from.

    Returns:
        The settings, with ``AUDIOFLOW_TEAM``/``AUDIOFLOW_CLUSTER`` in ``env`` so that
        pods pick the same team and cluster entry as the process that submitted them.

    Raises:
        ValueError: a missing image or a malformed ``secret_env`` item (one line, naming it).
    """
    kube = dict(entry.get("kubernetes") or {})
    where = f"cluster '{entry.get('cluster', '?')}' in {entry.get('team_file', 'the team file')}"
    if not kube.get("image"):
        raise ValueError(f"kubernetes.image is not set for {where}: name the training image")
    secrets = []
    for i, item in enumerate(kube.get("secret_env") or []):
        if not isinstance(item, dict) or not {"name", "secret", "key"} <= set(item):
            raise ValueError(
                f"kubernetes.secret_env[{i}] of {where} needs name, secret and key, got {item!r}"
            )
        secrets.append(SecretEnv(str(item["name"]), str(item["secret"]), str(item["key"])))
    env = {"AUDIOFLOW_TEAM": str(entry.get("team") or "default")}
    env["AUDIOFLOW_CLUSTER"] = str(entry.get("cluster") or "kubernetes")
    return KubernetesSettings(
        namespace=str(kube.get("namespace") or "default"),
        image=str(kube["image"]),
        service_account=kube.get("service_account") or None,
        pvc=kube.get("pvc") or None,
        mount_path=str(kube["mount_path"]) if kube.get("mount_path") else None,
        node_selector={str(k): str(v) for k, v in (kube.get("node_selector") or {}).items()},
        tolerations=[dict(t) for t in kube.get("tolerations") or []],
        shm_size=str(kube["shm_size"]) if kube.get("shm_size") else None,
        secret_env=secrets,
        metrics_port=int(kube.get("metrics_port", DEFAULT_METRICS_PORT) or 0),
        backoff_limit=int(kube.get("backoff_limit", DEFAULT_BACKOFF_LIMIT)),
        ttl_seconds_after_finished=int(kube.get("ttl_seconds_after_finished", DEFAULT_TTL_SECONDS)),
        image_pull_policy=kube.get("image_pull_policy") or None,
        env=env,
    )


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
