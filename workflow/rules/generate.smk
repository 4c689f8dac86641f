# Generate rule: samples (audio, spectrograms, a listening page) from the best state,
# every generate.every epochs and at the last one.


rule generate:
    input:
        unpack(lambda wildcards: best_state_inputs(wildcards, "generate")),
    output:
        marker("{sig}", "generate", "{epoch}"),
    log:
        f"{XP_LOGS_DIR}/{{sig}}/stages/generate_{{epoch}}.log",
    params:
        launcher=config["launcher"],
        overrides=run_overrides,
    conda:
        CONDA_ENV
    threads: stage_resources("generate")["threads"]
    resources:
        mem_mb=stage_resources("generate")["mem_mb"],
        gpu=stage_resources("generate")["gpus"],
        nodes=stage_resources("generate")["nodes"],
        nproc_per_node=stage_resources("generate")["nproc_per_node"],
    shell:
        launch("generate", "run {params.overrides} --stage generate --epoch {wildcards.epoch}")
