"""Dry-run planning time of the audioflow workflow against a bare Snakefile of the same shape.

Both are planned with `snakemake -n` in the same run: 256 XPs (a 4x4x4x4 grid) x 20 epochs,
train and valid every epoch, evaluate every 5 and generate every 10 epochs, one train job
per epoch, the synth corpus and its manifests. The bare Snakefile has the same rules,
directives and shell commands but hard-codes the signatures and epoch arithmetic, so the
ratio is the price of reading config/workflow.yaml, validating it, expanding the grid,
resolving signatures and looking plans up in the input functions.

Run: .venv/bin/python benchmarks/planning.py [--xps-side 4] [--epochs 20] [--repeat 3]
Prints cold (first plan, signatures composed) and warm (plan cache hit) timings and the
warm ratio (target <= 1.3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EVALUATE_EVERY, GENERATE_EVERY = 5, 10

BARE = """
# The same rules, directives and shell commands as workflow/rules/*.smk, with the XPs
# hard-coded: what a hand-written Snakefile for these XPs would plan.
SIGS = {sigs!r}
OVERRIDES = {{sig: "solver=compression/debug seed=" + sig for sig in SIGS}}
EPOCHS = {epochs}
XPS = "{root}/xps"
LOGS = "{root}/logs/xps"
SPLITS = ["train", "valid", "evaluate"]
ENV = "{repo}/environment.yml"
RES = dict(mem_mb=2000, gpu=0, nodes=1, nproc_per_node=1)
LAUNCH = (
    "audioflow launch --launcher {{params.launcher}}"
    " --name af-{{wildcards.sig}}-%s-{{wildcards.epoch}}"
    " --nodes {{resources.nodes}} --nproc-per-node {{resources.nproc_per_node}}"
    " --gpus {{resources.gpu}} --threads {{threads}} --mem-mb {{resources.mem_mb}} --log {{log}}"
    " --label sig={{wildcards.sig}} --label stage=%s --label epoch={{wildcards.epoch}}"
    " -- run {{params.overrides}} --expect-sig {{wildcards.sig}}"
    " --stage %s --epoch {{wildcards.epoch}}"
)


def every(n):
    return sorted(set(range(n, EPOCHS + 1, n)) | {{EPOCHS}})


rule all:
    input:
        [f"{{XPS}}/{{s}}/stages/valid_{{e}}.json" for s in SIGS for e in range(1, EPOCHS + 1)],
        [f"{{XPS}}/{{s}}/stages/evaluate_{{e}}.json" for s in SIGS for e in every({ev})],
        [f"{{XPS}}/{{s}}/stages/generate_{{e}}.json" for s in SIGS for e in every({gen})],

wildcard_constraints:
    sig="[0-9a-f]{{8}}",
    epoch="[0-9]+",

rule synth:
    output: directory("data/synth/{{split}}/audio")
    log: "logs/data/synth/{{split}}/audio.log"
    params: n=8, seed=0
    conda: ENV
    threads: 1
    resources: **RES
    shell: "audioflow synth {{output}} --n {{params.n}} --seed {{params.seed}} > {{log}} 2>&1"

rule manifest:
    input: "data/synth/{{split}}/audio"
    output: "data/synth/{{split}}/manifest.jsonl.gz"
    log: "logs/data/synth/{{split}}/manifest.log"
    params: launcher="local"
    conda: ENV
    threads: 1
    resources: **RES
    shell:
        "audioflow launch --launcher {{params.launcher}} --log {{log}}"
        " -- manifest {{input}} -o {{output}}"

def train_inputs(wc):
    e = int(wc.epoch)
    inputs = {{"manifests": [f"data/synth/{{s}}/manifest.jsonl.gz" for s in SPLITS]}}
    if e > 1:
        inputs["previous"] = f"{{XPS}}/{{wc.sig}}/stages/train_{{e - 1}}.json"
    if e > 2:
        inputs["valid"] = f"{{XPS}}/{{wc.sig}}/stages/valid_{{e - 2}}.json"
    return inputs

def valid_inputs(wc):
    e = int(wc.epoch)
    inputs = {{"train": f"{{XPS}}/{{wc.sig}}/stages/train_{{e}}.json"}}
    if e > 1:
        inputs["previous"] = f"{{XPS}}/{{wc.sig}}/stages/valid_{{e - 1}}.json"
        for stage, n in (("evaluate", {ev}), ("generate", {gen})):
            if e - 1 in every(n):
                inputs[stage] = f"{{XPS}}/{{wc.sig}}/stages/{{stage}}_{{e - 1}}.json"
    return inputs

def best_inputs(wc, stage, n):
    e = int(wc.epoch)
    epochs = every(n)
    inputs = {{"valid": f"{{XPS}}/{{wc.sig}}/stages/valid_{{e}}.json"}}
    if epochs.index(e) > 0:
        previous = epochs[epochs.index(e) - 1]
        inputs["previous"] = f"{{XPS}}/{{wc.sig}}/stages/{{stage}}_{{previous}}.json"
    return inputs

rule train:
    input: unpack(train_inputs)
    output: XPS + "/{{sig}}/stages/train_{{epoch}}.json"
    log: LOGS + "/{{sig}}/stages/train_{{epoch}}.log"
    params: launcher="local", overrides=lambda wc: OVERRIDES[wc.sig]
    conda: ENV
    threads: 1
    resources: **RES
    shell: LAUNCH % ("train", "train", "train")

rule valid:
    input: unpack(valid_inputs)
    output: XPS + "/{{sig}}/stages/valid_{{epoch}}.json"
    log: LOGS + "/{{sig}}/stages/valid_{{epoch}}.log"
    params: launcher="local", overrides=lambda wc: OVERRIDES[wc.sig]
    conda: ENV
    threads: 1
    resources: **RES
    shell: LAUNCH % ("valid", "valid", "valid")

rule evaluate:
    input: unpack(lambda wc: best_inputs(wc, "evaluate", {ev}))
    output: XPS + "/{{sig}}/stages/evaluate_{{epoch}}.json"
    log: LOGS + "/{{sig}}/stages/evaluate_{{epoch}}.log"
    params: launcher="local", overrides=lambda wc: OVERRIDES[wc.sig]
    conda: ENV
    threads: 1
    resources: **RES
    shell: LAUNCH % ("evaluate", "evaluate", "evaluate")

rule generate:
    input: unpack(lambda wc: best_inputs(wc, "generate", {gen}))
    output: XPS + "/{{sig}}/stages/generate_{{epoch}}.json"
    log: LOGS + "/{{sig}}/stages/generate_{{epoch}}.log"
    params: launcher="local", overrides=lambda wc: OVERRIDES[wc.sig]
    conda: ENV
    threads: 1
    resources: **RES
    shell: LAUNCH % ("generate", "generate", "generate")
"""


def write_workflow_config(folder: Path, side: int, epochs: int) -> None:
    """A grid of side**4 XPs over four signature-changing keys, and a config naming it."""
    values = {
        "optim.lr": [1e-4 * (i + 1) for i in range(side)],
        "seed": list(range(side)),
        "optim.max_norm": [float(i) for i in range(side)],
        "optim.adam.weight_decay": [1e-3 * i for i in range(side)],
    }
    grid = {
        "base": [
            "solver=compression/debug",
            f"optim.epochs={epochs}",
            f"evaluate.every={EVALUATE_EVERY}",
            f"generate.every={GENERATE_EVERY}",
        ],
        "grid": [{"product": values}],
    }
    (folder / "grid.yaml").write_text("# planning benchmark grid\n" + yaml.safe_dump(grid))
    synth = {split: {"n": 8} for split in ("train", "valid", "evaluate")}
    config = {"xps": [], "grids": ["grid.yaml"], "publish": [], "synth": synth}
    (folder / "bench.yaml").write_text(yaml.safe_dump(config))


def dry_run(snakefile: Path, folder: Path, extra: list[str]) -> float:
    """Seconds taken by one `snakemake -n` (the whole process, as a user waits for it)."""
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "-n",
        "--quiet",
        "all",
        "-s",
        str(snakefile),
        "--directory",
        str(folder),
        "--cores",
        "1",
        *extra,
    ]
    env = {**os.environ, "AUDIOFLOW_XP_DIR": str(folder / "outputs")}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{snakefile} dry-run failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return elapsed


def signatures(folder: Path) -> list[str]:
    """The real signatures of the grid (from the workflow's plan cache)."""
    import json

    plans = json.loads((folder / ".snakemake" / "audioflow" / "plans.json").read_text())["plans"]
    return sorted({facts["sig"] for facts in plans.values()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xps-side", type=int, default=4, help="XPs = side**4 (4: 256)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_workflow_config(folder, args.xps_side, args.epochs)
        workflow = ["--configfile", str(folder / "bench.yaml")]
        cold = [dry_run(REPO / "Snakefile", folder, workflow)]
        sigs = signatures(folder)
        bare = folder / "bare" / "Snakefile"
        bare.parent.mkdir()
        root = folder / "outputs"
        bare.write_text(
            BARE.format(
                sigs=sigs,
                epochs=args.epochs,
                root=root,
                repo=REPO,
                ev=EVALUATE_EVERY,
                gen=GENERATE_EVERY,
            )
        )
        # Interleaved, best of each: the machine's load moves all three alike.
        warm, base = [], []
        for _ in range(args.repeat):
            base.append(dry_run(bare, folder, ["--workflow-profile", "none"]))
            warm.append(dry_run(REPO / "Snakefile", folder, workflow))
            shutil.rmtree(folder / ".snakemake", ignore_errors=True)
            cold.append(dry_run(REPO / "Snakefile", folder, workflow))
    jobs = len(sigs) * (
        2 * args.epochs
        + len(range(EVALUATE_EVERY, args.epochs + 1, EVALUATE_EVERY))
        + len(range(GENERATE_EVERY, args.epochs + 1, GENERATE_EVERY))
    )
    print(f"XPs: {len(sigs)}  epochs: {args.epochs}  stage jobs: ~{jobs}")
    print(f"bare Snakefile dry-run:     {min(base):7.2f} s (best of {args.repeat})")
    print(f"audioflow dry-run, warm:    {min(warm):7.2f} s (best of {args.repeat})")
    print(f"audioflow dry-run, cold:    {min(cold):7.2f} s (no plan cache)")
    print(f"ratio warm/bare: {min(warm) / min(base):.2f}  (target <= 1.3)")
    print(f"ratio cold/bare: {min(cold) / min(base):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
