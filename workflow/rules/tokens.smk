# Token rules: each manifest an LM XP reads, encoded once by the codec it names
# (`compression_model_checkpoint: //reference/NAME`) into token shards under
# <xp_root>/tokens/<codec hash>-<manifest hash>/ (see audioflow.data.tokens); the output is a
# record of that cache. A republished codec is newer than the record, so the tokens are
# encoded again and the LM's train jobs rerun (the solver starts over when the codec's content
# hash changed). `snakemake outputs/tokens/refs/demo_codec/data/synth/train/manifest.json`
# encodes one split; audioflow.workflow.tokens says which records an XP waits for.

from audioflow.workflow.tokens import token_records

TOKENS_DIR = _short(Path(CLUSTER["xp_root"]) / "tokens")


rule tokens:
    input:
        codec=f"{REFERENCE_DIR}/{{codec}}",
        # ancient(), as for train jobs: a rebuilt manifest of the same content must not
        # retrain the LM (new content is encoded by the solver itself, by its hash)
        manifest=ancient("{manifest}.jsonl.gz"),
    output:
        f"{TOKENS_DIR}/refs/{{codec}}/{{manifest}}.json",
    log:
        "logs/tokens/{codec}/{manifest}.log",
    params:
        python=sys.executable,
    conda:
        CONDA_ENV
    threads: stage_threads("tokens")
    resources:
        **stage_resources("tokens"),
    wildcard_constraints:
        codec="[^/]+",
    shell:
        "{params.python} -m audioflow.data.tokens --codec //reference/{wildcards.codec}"
        " --manifest {input.manifest} --record {output} --workers {threads} > {log} 2>&1"
