"""One interface for running a stage's heavy command, locally or on a cluster.

A workflow rule describes its job as a :class:`JobSpec` (what to run, on how many nodes,
GPUs and processes) and hands it to a :class:`Launcher`; the backend is chosen by name
(``local`` by default, ``kubernetes`` with ``snakemake --profile k8s``), so the workflow
never changes when the place it runs does.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

# Exit status a stage uses for configuration errors: retrying cannot help, so launchers
# (and the Kubernetes podFailurePolicy) fail fast on it instead of burning retries.
CONFIG_ERROR_EXIT_CODE = 2
# Exit status of a node whose peer vanished (preempted, drained): sysexits' EX_TEMPFAIL.
# The node did nothing wrong, so the Kubernetes podFailurePolicy does not count it; the
# whole gang restarts from the last checkpoint (see audioflow.launch.peers).
PEER_LOST_EXIT_CODE = 75

# The command-line option that sets each resource of a JobSpec, and its least valid value:
# torchrun and the Job API take nonsense such as 0 processes or -5 MiB and fail later,
# far from the option at fault.
RESOURCE_OPTIONS: dict[str, tuple[str, int]] = {
    "nodes": ("--nodes", 1),
    "nproc_per_node": ("--nproc-per-node", 1),
    "gpus_per_node": ("--gpus", 0),
    "threads": ("--threads", 1),
    "mem_mb": ("--mem-mb", 1),
}

LAUNCHERS: dict[str, str] = {
    "local": "audioflow.launch.local:LocalLauncher",
    "kubernetes": "audioflow.launch.kubernetes:KubernetesLauncher",
}


class JobSpecError(ValueError):
    """A job that cannot run as described; one line per problem, naming the option at fault.

    Attributes:
        problems: the individual lines.
    """

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def resource_problems(**values: int) -> list[str]:
    """One line per resource value below its least valid value (keys of RESOURCE_OPTIONS)."""
    problems = []
    for key, value in values.items():
        option, least = RESOURCE_OPTIONS[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            problems.append(f"{option} must be at least {least}, got {value}")
    return problems


@dataclass(frozen=True)
class JobSpec:
    """A stage command and the resources it runs with.

    Args:
        name: deterministic job name, unique per (signature, stage, epoch).
        args: arguments of ``python -m audioflow.cli`` (e.g. ``["run", "--stage", "train"]``).
        nodes: number of machines; torchrun runs on each.
        nproc_per_node: processes per node (one per GPU on GPU machines).
        gpus_per_node: GPUs requested per node (0 on CPU).
        threads: CPU threads per node.
        mem_mb: memory per node in MiB.
        log_path: file that receives the job's output (rank 0 on a cluster).
        labels: bounded metadata (signature, stage, epoch) for names, labels and metrics.
    """

    name: str
    args: list[str]
    nodes: int = 1
    nproc_per_node: int = 1
    gpus_per_node: int = 0
    threads: int = 1
    mem_mb: int = 2000
    log_path: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        problems = resource_problems(**{key: getattr(self, key) for key in RESOURCE_OPTIONS})
        if problems:
            raise JobSpecError(problems)

    def torchrun_args(self, node_rank: str | None = None, master: str | None = None) -> list[str]:
        """The torchrun command line that runs ``args`` on one node.

        Single-node jobs use ``--standalone`` (a free local port, no rendezvous server);
        multi-node jobs name the node rank and the master address explicitly.

        Raises:
            JobSpecError: a multi-node job without ``node_rank`` and ``master``.
        """
        cmd = ["torchrun"]
        if self.nodes == 1 and master is None:
            cmd += ["--standalone"]
        else:
            # Without both, torchrun gets `--node-rank=None` and dies on a usage message.
            if node_rank is None or master is None:
                raise JobSpecError(
                    f"--nodes {self.nodes}: a multi-node job needs each node's rank and the "
                    "master address; run it with --launcher kubernetes"
                )
            cmd += [f"--nnodes={self.nodes}", f"--node-rank={node_rank}"]
            cmd += [f"--master-addr={master}", "--master-port=29500"]
        # `--` keeps torchrun's parser off the job's own options: without it an option
        # such as `--n` is taken for an abbreviation of torchrun's `--nnodes`.
        cmd += [f"--nproc-per-node={self.nproc_per_node}", "-m", "audioflow.cli", "--", *self.args]
        return cmd


class Launcher(ABC):
    """Runs a :class:`JobSpec` to completion and returns its exit status."""

    @abstractmethod
    def launch(self, job: JobSpec) -> int:
        """Run the job, stream its output to ``job.log_path``, return its exit status."""


def get_launcher(name: str, **kwargs) -> Launcher:
    """Return the launcher registered under ``name`` (``local`` or ``kubernetes``).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    if name not in LAUNCHERS:
        valid = ", ".join(sorted(LAUNCHERS))
        raise ValueError(f"unknown launcher {name!r}: choose one of {valid}")
    module_name, class_name = LAUNCHERS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**kwargs)
