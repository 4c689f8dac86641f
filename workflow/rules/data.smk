# Data rules: the synthetic demo corpus and the manifest of each of its splits (sizes and
# seeds under `synth:` in config/workflow.yaml). `snakemake data/synth/train/manifest.jsonl.gz`
# builds one split; `snakemake` builds those the XPs read. Both commands write atomically
# (temp + rename), so a killed job never leaves an output that looks complete.


rule synth:
    output:
        directory("data/synth/{split}/audio"),
    log:
        "logs/data/synth/{split}/audio.log",
    params:
        n=lambda wildcards: config["synth"][wildcards.split]["n"],
        seed=lambda wildcards: config["synth"][wildcards.split]["seed"],
    conda:
        CONDA_ENV
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    wildcard_constraints:
        split=SPLITS,
    # Light (a second for the demo corpus), so it runs where snakemake runs, without a
    # launcher or a cluster job.
    shell:
        "audioflow synth {output} --n {params.n} --seed {params.seed} --no-manifest --force"
        " > {log} 2>&1"


rule manifest:
    input:
        "data/synth/{split}/audio",
    output:
        "data/synth/{split}/manifest.jsonl.gz",
    log:
        "logs/data/synth/{split}/manifest.log",
    params:
        launcher=config["launcher"],
        rejects="logs/data/synth/{split}/manifest.rejects.jsonl",
    conda:
        CONDA_ENV
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    wildcard_constraints:
        split=SPLITS,
    shell:
        "audioflow launch --launcher {params.launcher} --name af-data-manifest-{wildcards.split}"
        " --threads {threads} --mem-mb {resources.mem_mb} --log {log}"
        " --label stage=manifest --label split={wildcards.split}"
        " -- manifest {input} -o {output} --rejects {params.rejects} -j {threads}"
