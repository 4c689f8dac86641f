# Speech data rules: the spoken demo corpus (espeak-ng, `audioflow synth --kind speech`) and
# the manifest of each split, from `speech_synth:` in the workflow config (set by
# config/workflow_speech.yaml, which `make demo-speech` passes with --configfile).
# `snakemake --configfile config/workflow_speech.yaml data/speech/train/manifest.jsonl.gz`
# builds one split. Both commands write atomically (temp + rename).

# Splits of the spoken corpus the rules may build (a regex for the wildcard).
SPEECH_SPLITS = "|".join(re.escape(split) for split in config["speech_synth"]) or "(?!)"


rule speech_synth:
    output:
        directory("data/speech/{split}/audio"),
    log:
        "logs/data/speech/{split}/audio.log",
    params:
        n=lambda wildcards: config["speech_synth"][wildcards.split]["n"],
        seed=lambda wildcards: config["speech_synth"][wildcards.split]["seed"],
        voices=lambda wildcards: config["speech_synth"][wildcards.split]["voices"],
    conda:
        CONDA_ENV
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    wildcard_constraints:
        split=SPEECH_SPLITS,
    # espeak-ng renders ~30 clips/s per thread; it runs where snakemake runs, like synth.
    shell:
        "audioflow synth {output} --kind speech --voices {params.voices} --n {params.n}"
        " --seed {params.seed} --no-manifest --force > {log} 2>&1"


rule speech_manifest:
    input:
        "data/speech/{split}/audio",
    output:
        "data/speech/{split}/manifest.jsonl.gz",
    log:
        "logs/data/speech/{split}/manifest.log",
    params:
        launcher=config["launcher"],
        rejects="logs/data/speech/{split}/manifest.rejects.jsonl",
    conda:
        CONDA_ENV
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    wildcard_constraints:
        split=SPEECH_SPLITS,
    # --require-text: a clip without its transcript is a reject, never a silent "" target
    shell:
        "audioflow launch --launcher {params.launcher} --name af-data-speech-{wildcards.split}"
        " --threads {threads} --mem-mb {resources.mem_mb} --log {log}"
        " --label stage=manifest --label split={wildcards.split}"
        " -- manifest {input} -o {output} --require-text --rejects {params.rejects} -j {threads}"
