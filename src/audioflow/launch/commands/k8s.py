"""Kubernetes helpers: print the manifests a stage would be submitted with, no cluster needed.

Example: audioflow k8s render 1a2b3c4d train 3 --nodes 2 --gpus 8
prints the Indexed Job and headless Service (YAML) that `snakemake --profile k8s` would
submit for epoch 3 of XP 1a2b3c4d, using the team/cluster config (AUDIOFLOW_TEAM,
AUDIOFLOW_CLUSTER, default: the `kubernetes` cluster). Pipe it to `kubectl apply -f -`
to run the stage by hand.
"""

from __future__ import annotations

import argparse
import sys

STAGES = ("train", "valid", "evaluate", "generate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    render = sub.add_parser("render", help="print a stage's Job and Service manifests")
    render.add_argument("sig", help="XP signature (8 hex characters, see `audioflow ls`)")
    render.add_argument("stage", choices=STAGES)
    render.add_argument("epoch", nargs="?", type=int, default=None, help="epoch of the stage")
    render.add_argument("--nodes", type=int, default=1, help="machines (torchrun on each)")
    render.add_argument("--gpus", type=int, default=0, help="GPUs per node")
    render.add_argument(
        "--nproc-per-node", type=int, default=None, help="processes per node (default: --gpus)"
    )
    render.add_argument("--threads", type=int, default=4, help="CPU threads per node")
    render.add_argument("--mem-mb", type=int, default=16000, help="memory per node, MiB")
    render.add_argument("--name", default=None, help="job name (default: af-SIG-STAGE-EPOCH)")


def main(args: argparse.Namespace) -> int:
    import yaml

    from audioflow.config import xp_from_sig
    from audioflow.config.errors import ConfigError

    from ..base import CONFIG_ERROR_EXIT_CODE, JobSpec, resource_problems
    from ..k8s_settings import load_settings
    from ..manifests import render_manifests

    # Checked before anything is read: a manifest with -1 GPUs or epoch -3 would be
    # printed with exit 0 and fail only once applied to the cluster.
    problems = resource_problems(
        nodes=args.nodes, gpus_per_node=args.gpus, threads=args.threads, mem_mb=args.mem_mb
    )
    if args.nproc_per_node is not None:
        problems += resource_problems(nproc_per_node=args.nproc_per_node)
    if args.epoch is not None and args.epoch < 1:
        problems.append(f"epoch must be at least 1, got {args.epoch}")
    if problems:
        for line in problems:
            print(f"audioflow k8s render: {line}", file=sys.stderr)
        return CONFIG_ERROR_EXIT_CODE
    try:
        xp = xp_from_sig(args.sig)
        settings = load_settings()
    except (ConfigError, ValueError) as exc:
        print(f"audioflow k8s render: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT_CODE
    stage_args = ["run", *xp.overrides, "--stage", args.stage]
    labels = {"sig": xp.sig, "stage": args.stage}
    if args.epoch is not None:
        stage_args += ["--epoch", str(args.epoch)]
        labels["epoch"] = str(args.epoch)
    # The workflow's job names (workflow/rules/common.smk), so both name the same Job.
    default_name = f"af-{xp.sig}-{args.stage}-{args.epoch if args.epoch is not None else 'best'}"
    nproc = args.nproc_per_node if args.nproc_per_node is not None else max(1, args.gpus)
    job = JobSpec(
        name=args.name or default_name,
        args=stage_args,
        nodes=args.nodes,
        nproc_per_node=nproc,
        gpus_per_node=args.gpus,
        threads=args.threads,
        mem_mb=args.mem_mb,
        labels=labels,
    )
    yaml.safe_dump_all(render_manifests(job, settings), sys.stdout, sort_keys=False)
    return 0
