# XP report rule (the page a person reads; `dvc_report` in publish.smk writes DVC's files):
# `audioflow report` of every declared XP once the stages of its last epoch
# (valid, evaluate, generate) are done, in <xp_root>/xps/<sig>/report/index.html: overrides,
# best state, stage timings, a chart per quantity and the listening pages, needing no network.


rule xp_report:
    input:
        lambda wildcards: [
            marker(wildcards.sig, stage, plan_of(wildcards).epochs)
            for stage in ("valid", "evaluate", "generate")
        ],
    output:
        f"{XPS_DIR}/{{sig}}/{layout.REPORT_DIR}/index.html",
    log:
        _short(layout.stage_logs_dir(CLUSTER["xp_root"]) / "{sig}" / f"{layout.REPORT_DIR}.log"),
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        python=sys.executable,
    conda:
        CONDA_ENV
    threads: stage_threads("report")
    resources:
        **stage_resources("report"),
    shell:
        "{params.python} -m audioflow.cli report {wildcards.sig} -o {params.folder} > {log} 2>&1"
