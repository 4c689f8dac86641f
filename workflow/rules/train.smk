# Train rule: one job per chunk of train.epochs_per_job epochs, resuming from the latest
# checkpoint; its output is the marker the solver writes last (stages/train_<E>.json).


rule train:
    input:
        unpack(train_inputs),
    output:
        marker("{sig}", "train", "{epoch}"),
    log:
        f"{XP_LOGS_DIR}/{{sig}}/stages/train_{{epoch}}.log",
    params:
        launcher=config["launcher"],
        overrides=run_overrides,
    conda:
        CONDA_ENV
    threads: stage_resources("train")["threads"]
    resources:
        mem_mb=stage_resources("train")["mem_mb"],
        gpu=stage_resources("train")["gpus"],
        nodes=stage_resources("train")["nodes"],
        nproc_per_node=stage_resources("train")["nproc_per_node"],
    shell:
        launch("train", "run {params.overrides} --stage train --epoch {wildcards.epoch}")
