"""Kubernetes helpers: print the manifests a stage would be submitted with, no cluster needed.

Example: audioflow k8s render 1a2b3c4d train 3 --nodes 2 --gpus 8
prints the Indexed Job, headless Service and NetworkPolicy (YAML) that
`snakemake --profile k8s` would submit for epoch 3 of XP 1a2b3c4d, using the team/cluster
config (AUDIOFLOW_TEAM, AUDIOFLOW_CLUSTER, default: the `kubernetes` cluster). Pipe it to
`kubectl apply -f -` to run the stage by hand. Applied that way the Service and the
NetworkPolicy have no owner (the Job's uid is unknown before it exists), so the Job's
deletion does not remove them: the output's first lines, and stderr, give the one command
that removes all three.

The pod runs the XP's own overrides minus its run-only ones (keys of ``xp.exclude``:
device, monitoring.*, logging.*...): those describe the run that created the XP, maybe on
a laptop, and the cluster sets its own. Leaving them out keeps the signature.
"""

from __future__ import annotations

import argparse
import sys

from audioflow.config.layout import STAGES


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
    render.add_argument(
        "--config-dir",
        default=None,
        help="config folder of the XP, as the pod sees it (passed to `audioflow run`)",
    )
    render.add_argument(
        "--accept-drift",
        action="store_true",
        help="let the pod continue the XP if its config changed (passed to `audioflow run`)",
    )


def pod_overrides(overrides: list[str], patterns: list[str]) -> list[str]:
    """``overrides`` without those setting a key excluded from the signature.

    Overrides of ``xp.*`` stay, though ``xp.*`` is excluded: ``xp.exclude`` decides which
    other keys are signed, so dropping it could change the signature.
    """
    from audioflow.config.composition import parse_overrides
    from audioflow.config.signing import is_excluded

    kept = []
    for text in overrides:
        parsed, _ = parse_overrides([text])
        # An override that does not parse (never stored by get_xp) is left to `run` to report.
        key = parsed[0].key_or_group if parsed else ""
        if key and is_excluded(key, patterns) and key != "xp" and not key.startswith("xp."):
            continue
        kept.append(text)
    return kept


def main(args: argparse.Namespace) -> int:
    import yaml

    from audioflow.config import xp_from_sig
    from audioflow.config.errors import ConfigError
    from audioflow.config.signing import exclude_patterns

    from ..base import CONFIG_ERROR_EXIT_CODE, JobSpec, resource_problems
    from ..k8s_settings import load_settings
    from ..manifests import cleanup_command, render_manifests

    # Checked before anything is read: a manifest with -1 GPUs or epoch -3 would be
    # printed with exit 0 and fail only once applied to the cluster.
    problems = resource_problems(
        nodes=args.nodes, gpus_per_node=args.gpus, threads=args.threads, mem_mb=args.mem_mb
    )
    if args.nproc_per_node is not None:
        problems += resource_problems(nproc_per_node=args.nproc_per_node)
    if args.epoch is not None and args.epoch < 1:
        problems.append(f"epoch must be at least 1, got {args.epoch}")
    if args.config_dir is not None and not args.config_dir.strip():
        problems.append("--config-dir is empty; give the XP's config folder or leave it out")
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
    stage_args = ["run", *pod_overrides(xp.overrides, exclude_patterns(xp.cfg))]
    # The pod refuses to run if the overrides no longer sign as the XP it was rendered for.
    stage_args += ["--expect-sig", xp.sig]
    # Options after the overrides, as the workflow's run_overrides puts them.
    if args.config_dir is not None:
        stage_args += ["--config-dir", args.config_dir]
    if args.accept_drift:
        stage_args.append("--accept-drift")
    stage_args += ["--stage", args.stage]
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
    cleanup = cleanup_command(job, settings)
    sys.stdout.write(f"# applied by hand, remove it all once the Job is done with:\n# {cleanup}\n")
    yaml.safe_dump_all(render_manifests(job, settings), sys.stdout, sort_keys=False)
    print(f"audioflow k8s render: once the Job is done: {cleanup}", file=sys.stderr)
    return 0
