# Data rules: the synthetic demo corpus and the manifest of each of its splits.
# `snakemake data/synth/train/manifest.jsonl.gz` builds one split; `snakemake` builds all.


rule synth:
    output:
        directory("data/synth/{split}/audio"),
    log:
        "logs/data/synth/{split}/audio.log",
    params:
        n=lambda wildcards: config["synth"][wildcards.split]["n"],
        seed=lambda wildcards: config["synth"][wildcards.split]["seed"],
    threads: stage_resources("data")["threads"]
    resources:
        mem_mb=stage_resources("data")["mem_mb"],
        gpu=0,
        nodes=1,
        nproc_per_node=1,
    # Written beside the final folder and renamed, so a killed job never leaves a
    # half-written corpus that looks complete.
    shell:
        "rm -rf {output}.tmp && "
        "audioflow launch --launcher {config[launcher]} --name af-data-synth-{wildcards.split}"
        " --threads {threads} --mem-mb {resources.mem_mb} --log {log}"
        " --label stage=synth --label split={wildcards.split}"
        " -- synth {output}.tmp --n {params.n} --seed {params.seed}"
        " && mv {output}.tmp {output}"


rule manifest:
    input:
        "data/synth/{split}/audio",
    output:
        "data/synth/{split}/manifest.jsonl.gz",
    log:
        "logs/data/synth/{split}/manifest.log",
    params:
        tmp="data/synth/{split}/.manifest.tmp.jsonl.gz",
    threads: stage_resources("data")["threads"]
    resources:
        mem_mb=stage_resources("data")["mem_mb"],
        gpu=0,
        nodes=1,
        nproc_per_node=1,
    shell:
        "audioflow launch --launcher {config[launcher]} --name af-data-manifest-{wildcards.split}"
        " --threads {threads} --mem-mb {resources.mem_mb} --log {log}"
        " --label stage=manifest --label split={wildcards.split}"
        " -- manifest {input} -o {params.tmp}"
        " && mv {params.tmp} {output}"
