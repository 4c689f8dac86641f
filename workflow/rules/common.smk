# Shared setup of the audioflow workflow: XP plans, output paths and input functions.
# Included by the Snakefile; the planning logic itself lives in audioflow.workflow.

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from audioflow.config import ConfigError, cluster_config, layout
from audioflow.workflow.epochs import chunk_end, train_dependencies
from audioflow.config.grids import GridError
from audioflow.workflow.plan import by_signature, load_plans
from audioflow.workflow.publication import publication_record, publish_refusal
from snakemake.exceptions import WorkflowError

# Stage commands call `audioflow` and `torchrun` from the environment snakemake runs in,
# even when that environment (e.g. .venv) is not activated in the shell.
BIN = Path(sys.executable).parent
if shutil.which("audioflow") is None and (BIN / "audioflow").exists():
    shell.prefix(f"export PATH={shlex.quote(str(BIN))}:$PATH; ")
# The software every rule needs (used with `--software-deployment-method conda`).
CONDA_ENV = "../../environment.yml"

try:
    # where XPs and references live: team/cluster (teams/ of config_dir first), not signature
    CLUSTER = cluster_config(config.get("config_dir"))
except ConfigError as exc:
    raise WorkflowError(f"audioflow team/cluster config: {exc}") from None


def _short(path):
    """``path`` relative to the working directory when inside it, so that targets typed
    on the command line (`snakemake outputs/xps/<sig>/stages/valid_2.json`) match."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


XPS_DIR = _short(layout.xps_dir(CLUSTER["xp_root"]))
REFERENCE_DIR = _short(CLUSTER["reference_dir"])
EPOCHS_PER_JOB = config["train"]["epochs_per_job"]
# The stages that follow training (their markers are the workflow's targets), and those
# of them that read the best state that valid keeps.
AFTER_TRAIN = layout.STAGES[1:]
BEST_STATE_STAGES = layout.STAGES[2:]
# Splits of the synthetic corpus the data rules may build (a regex for the wildcard).
SPLITS = "|".join(re.escape(split) for split in config["synth"]) or "(?!)"


def stage_resources(stage):
    """Resources of a stage's jobs (``threads`` aside), from the workflow config's
    ``resources.<stage>`` (the schema fills in what it leaves out); profiles override them
    with ``--set-resources <rule>:<name>=<value>``."""
    return {k: v for k, v in config["resources"][stage].items() if k != "threads"}


def stage_threads(stage):
    """CPU threads of a stage's jobs (``resources.<stage>.threads``; ``--set-threads``)."""
    return config["resources"][stage]["threads"]


def _load_plans():
    try:
        return load_plans(config)
    except (GridError, ConfigError) as exc:
        raise WorkflowError(f"audioflow workflow config: {exc}") from None


PLANS = _load_plans()
BY_SIG = by_signature(PLANS)
BY_NAME = {plan.name: plan for plan in PLANS}


def _published():
    published = {}
    for item in config["publish"]:
        if item["xp"] not in BY_NAME:
            known = ", ".join(sorted(BY_NAME)) or "none"
            raise WorkflowError(
                f"audioflow workflow config: publish names XP {item['xp']!r}, which is not "
                f"declared in xps/grids (known: {known})"
            )
        plan = BY_NAME[item["xp"]]
        refusal = publish_refusal(item["as"], plan.overrides, config["config_dir"])
        if refusal:
            raise WorkflowError(f"audioflow workflow config: {refusal}")
        published[item["as"]] = plan.sig
    return published


PUBLISHED = _published()
PUBLISHED_NAMES = "|".join(re.escape(name) for name in PUBLISHED) or "(?!)"
# One record per published name, rewritten when `publish:` points it at another XP, so
# that its publish and report jobs rerun (see audioflow.workflow.publication).
PUBLICATION_RECORDS = {
    name: str(
        publication_record(
            Path(".snakemake/audioflow/published"), name, sig, Path(REFERENCE_DIR) / name
        )
    )
    for name, sig in PUBLISHED.items()
}


def marker(sig, stage, epoch):
    """The completion marker the solver writes last when a stage of an epoch is done."""
    return str(layout.marker_path(Path(XPS_DIR) / sig, stage, epoch))


def stage_log(sig, stage, epoch):
    """The rule log of a stage job."""
    return _short(layout.stage_log_path(CLUSTER["xp_root"], sig, stage, epoch))


def plan_of(wildcards):
    try:
        return BY_SIG[wildcards.sig]
    except KeyError:
        raise WorkflowError(
            f"no XP with signature {wildcards.sig} in the workflow config: declare it in "
            "config/workflow.yaml (xps or grids)"
        ) from None


def train_inputs(wildcards):
    """Train job [S, E]: the manifests, train S-1 (its checkpoint) and valid S-2."""
    plan = plan_of(wildcards)
    try:
        previous, valid = train_dependencies(int(wildcards.epoch), plan.epochs, EPOCHS_PER_JOB)
    except ValueError as exc:
        raise WorkflowError(f"XP {plan.sig} ({plan.name}): {exc}") from None
    # ancient(): a rebuilt manifest (dvc checkout, a rerun of the data rules) must not
    # retrain finished epochs; the signature, not the data's mtime, names what was trained.
    inputs = {"manifests": [ancient(path) for path in plan.manifests]}
    try:  # the token caches of an LM XP (workflow/rules/tokens.smk)
        inputs["tokens"] = token_records(
            plan.overrides, plan.manifests, TOKENS_DIR, config["config_dir"]
        )
    except ConfigError as exc:
        raise WorkflowError(f"XP {plan.sig} ({plan.name}): {exc}") from None
    if previous is not None:
        inputs["previous"] = marker(plan.sig, "train", previous)
    if valid is not None:
        inputs["valid"] = marker(plan.sig, "valid", valid)
    return inputs


def valid_inputs(wildcards):
    """Valid E: the train job that produced epoch E, valid E-1 (best state in order), and
    evaluate/generate E-1 when they run then: they read the best state as of E-1, which
    valid E may replace."""
    plan = plan_of(wildcards)
    epoch = int(wildcards.epoch)
    if not 1 <= epoch <= plan.epochs:
        raise WorkflowError(f"XP {plan.sig} ({plan.name}) has no epoch {epoch}")
    inputs = {"train": marker(plan.sig, "train", chunk_end(epoch, plan.epochs, EPOCHS_PER_JOB))}
    if epoch > 1:
        inputs["previous"] = marker(plan.sig, "valid", epoch - 1)
        # Only an order for a valid E still to run: once it is done, a newly wanted
        # evaluate/generate E-1 (generate.every changed, a --forcerun) must not make
        # Snakemake rerun valid E and everything after it.
        if not os.path.exists(marker(plan.sig, "valid", epoch)):
            for stage in BEST_STATE_STAGES:
                if epoch - 1 in plan.stage_epochs(stage):
                    inputs[stage] = marker(plan.sig, stage, epoch - 1)
    return inputs


def best_state_inputs(wildcards, stage):
    """Evaluate/generate E: valid E (the best state as of E) and the stage's previous run.

    Runs of one stage go in epoch order: each holds the stage's lock in the XP folder.
    """
    plan = plan_of(wildcards)
    epoch = int(wildcards.epoch)
    epochs = plan.stage_epochs(stage)
    if epoch not in epochs:
        raise WorkflowError(
            f"XP {plan.sig} ({plan.name}) runs {stage} at epochs {epochs}, not at {epoch}"
        )
    inputs = {"valid": marker(plan.sig, "valid", epoch)}
    position = epochs.index(epoch)
    # The order matters only for a run still to come (see valid_inputs).
    if position > 0 and not os.path.exists(marker(plan.sig, stage, epoch)):
        inputs["previous"] = marker(plan.sig, stage, epochs[position - 1])
    return inputs


def stage_inputs(stage):
    """The input function of an epoch stage's rule (see workflow/rules/stages.smk)."""
    if stage == "train":
        return train_inputs
    if stage == "valid":
        return valid_inputs
    return lambda wildcards: best_state_inputs(wildcards, stage)


def publish_inputs(wildcards):
    """Publishing an XP waits for all its stages of the last epoch, and for its record."""
    plan = BY_SIG[PUBLISHED[wildcards.name]]
    markers = [marker(plan.sig, stage, plan.epochs) for stage in AFTER_TRAIN]
    return [*markers, PUBLICATION_RECORDS[wildcards.name]]


# The user config folder, for every job's audioflow command that reads the XP's config or
# imports its solver (run, export).
CONFIG_DIR_ARGS = ["--config-dir", config["config_dir"]] if config["config_dir"] else []


def run_overrides(wildcards):
    """The `audioflow run` arguments that name the XP (shell-quoted); stage rules add
    ``--expect-sig`` so that a job refuses to run if they no longer sign as planned."""
    plan = plan_of(wildcards)
    extra = list(CONFIG_DIR_ARGS)
    if config["accept_drift"]:
        extra.append("--accept-drift")
    return shlex.join([*plan.overrides, *extra])


def launch(stage, command):
    """Shell command running `audioflow COMMAND` through the configured launcher.

    The job name and labels carry the signature, stage and epoch (for Kubernetes names,
    labels and metrics); resources come from the rule so profiles can change them.
    """
    return (
        "audioflow launch --launcher {params.launcher} --name af-{wildcards.sig}-%s-{wildcards.epoch}"
        " --nodes {resources.nodes} --nproc-per-node {resources.nproc_per_node}"
        " --gpus {resources.gpu} --threads {threads} --mem-mb {resources.mem_mb} --log {log}"
        " --label sig={wildcards.sig} --label stage=%s --label epoch={wildcards.epoch}"
        " -- %s" % (stage, stage, command)
    )


def all_targets():
    """Every marker of every declared XP, every published reference model and its report."""
    targets = []
    for plan in BY_SIG.values():
        for stage in AFTER_TRAIN:
            targets += [marker(plan.sig, stage, e) for e in plan.stage_epochs(stage)]
    targets += [f"{REFERENCE_DIR}/{name}" for name in PUBLISHED]
    targets += [f"reports/{name}/metrics.json" for name in PUBLISHED]
    return targets


wildcard_constraints:
    sig=layout.SIG_PATTERN,
    epoch="[0-9]+",
