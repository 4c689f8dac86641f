# Valid rule: validates the weights of checkpoint_<E>.th (EMA when on) and updates the
# best state; it runs beside the training of epoch E+1 (valid E-1 is all train E+1 waits for).


rule valid:
    input:
        unpack(valid_inputs),
    output:
        marker("{sig}", "valid", "{epoch}"),
    log:
        f"{XP_LOGS_DIR}/{{sig}}/stages/valid_{{epoch}}.log",
    params:
        launcher=config["launcher"],
        overrides=run_overrides,
    conda:
        CONDA_ENV
    threads: stage_resources("valid")["threads"]
    resources:
        mem_mb=stage_resources("valid")["mem_mb"],
        gpu=stage_resources("valid")["gpus"],
        nodes=stage_resources("valid")["nodes"],
        nproc_per_node=stage_resources("valid")["nproc_per_node"],
    shell:
        launch("valid", "run {params.overrides} --stage valid --epoch {wildcards.epoch}")
