# Publish rule: exports the best model of each XP listed under `publish` in the workflow
# config to <reference_dir>/<as>/ (model.th, config.yaml, metadata.json), where
# //reference/<as> finds it (e.g. `audioflow codec decode ... --model //reference/<as>`).


rule publish:
    input:
        publish_inputs,
    output:
        directory(f"{REFERENCE_DIR}/{{name}}"),
    log:
        "logs/reference/{name}.log",
    params:
        launcher=config["launcher"],
        sig=lambda wildcards: PUBLISHED[wildcards.name],
        config_dir=shlex.join(CONFIG_DIR_ARGS),
    conda:
        CONDA_ENV
    threads: stage_threads("publish")
    resources:
        **stage_resources("publish"),
    wildcard_constraints:
        name=PUBLISHED_NAMES,
    # Exported beside the final folder and renamed, so a reference is never half-written.
    shell:
        "rm -rf {output}.tmp && "
        "audioflow launch --launcher {params.launcher} --name af-{params.sig}-publish"
        " --threads {threads} --mem-mb {resources.mem_mb} --log {log}"
        " --label sig={params.sig} --label stage=publish"
        " -- export {params.sig} -o {output}.tmp {params.config_dir}"
        " && mv {output}.tmp {output}"


# DVC report rule: the published XP's final evaluate metrics (JSON), per-epoch and
# per-update histories (CSV) under reports/<as>/, which dvc.yaml declares as metrics and
# plots (`xp_report` in report.smk writes each XP's HTML page).
rule dvc_report:
    input:
        publish_inputs,
    output:
        metrics="reports/{name}/metrics.json",
        history="reports/{name}/history.csv",
        updates="reports/{name}/updates.csv",
    log:
        "logs/reports/{name}.log",
    params:
        folder=lambda wildcards: f"{XPS_DIR}/{PUBLISHED[wildcards.name]}",
        python=sys.executable,
    conda:
        CONDA_ENV
    threads: stage_threads("report")
    resources:
        **stage_resources("report"),
    wildcard_constraints:
        name=PUBLISHED_NAMES,
    shell:
        "{params.python} -m audioflow.workflow.report {params.folder} {output.metrics} {output.history}"
        " {output.updates}"
        " > {log} 2>&1"
