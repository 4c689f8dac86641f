# The audioflow workflow: every XP declared in config/workflow.yaml, stage by stage, with
# outputs under <xp_root>/xps/<sig>/. Run it with `snakemake --cores 2` (`make demo`);
# `snakemake --profile k8s` runs the heavy stages as Kubernetes Jobs. See docs/workflow.md.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/workflow.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        expand(rules.xp_report.output[0], sig=list(BY_SIG)),


include: "workflow/rules/data.smk"
include: "workflow/rules/speech.smk"
include: "workflow/rules/tokens.smk"
include: "workflow/rules/stages.smk"
include: "workflow/rules/publish.smk"
