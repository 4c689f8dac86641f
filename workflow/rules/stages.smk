# The four epoch stages, one rule each, from this one definition (names: audioflow's
# layout.STAGES, in epoch order). Each job runs `audioflow run OVERRIDES --expect-sig SIG
# --stage S --epoch E` through the configured launcher; its output is the marker the solver
# writes last (stages/<stage>_<E>.json under the XP folder).
#   train     one job per chunk of train.epochs_per_job epochs, resuming from the latest
#             checkpoint
#   valid     the weights of checkpoint_<E>.th (EMA when on); updates the best state and
#             runs beside the training of epoch E+1
#   evaluate  metrics of the best state, every evaluate.every epochs and at the last one
#   generate  samples (audio, spectrograms, a listening page) of the best state, every
#             generate.every epochs and at the last one
# Resources: resources.<stage> in the workflow config; profiles override them by rule name
# (--set-resources train:gpu=8, --set-threads train=8).

for stage in layout.STAGES:

    rule:
        name:
            stage
        input:
            unpack(stage_inputs(stage)),
        output:
            marker("{sig}", stage, "{epoch}"),
        log:
            stage_log("{sig}", stage, "{epoch}"),
        params:
            launcher=config["launcher"],
            overrides=run_overrides,
            # Bound now: a shell command is formatted when its job runs, after the loop.
            stage=stage,
        conda:
            CONDA_ENV
        threads: stage_threads(stage)
        resources:
            **stage_resources(stage),
        shell:
            launch(
                "{params.stage}",
                "run {params.overrides} --expect-sig {wildcards.sig}"
                " --stage {params.stage} --epoch {wildcards.epoch}",
            )
