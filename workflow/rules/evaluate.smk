# Evaluate rule: metrics of the best state every evaluate.every epochs and at the last one.


rule evaluate:
    input:
        unpack(lambda wildcards: best_state_inputs(wildcards, "evaluate")),
    output:
        marker("{sig}", "evaluate", "{epoch}"),
    log:
        f"{XP_LOGS_DIR}/{{sig}}/stages/evaluate_{{epoch}}.log",
    params:
        launcher=config["launcher"],
        overrides=run_overrides,
    conda:
        CONDA_ENV
    threads: stage_resources("evaluate")["threads"]
    resources:
        mem_mb=stage_resources("evaluate")["mem_mb"],
        gpu=stage_resources("evaluate")["gpus"],
        nodes=stage_resources("evaluate")["nodes"],
        nproc_per_node=stage_resources("evaluate")["nproc_per_node"],
    shell:
        launch("evaluate", "run {params.overrides} --stage evaluate --epoch {wildcards.epoch}")
