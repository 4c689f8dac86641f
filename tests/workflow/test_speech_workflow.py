"""The speech demo's workflow config, planned by a real `snakemake` dry run: the spoken
corpus rules, the ASR XP's stages and the publication of reference/demo_asr."""

from __future__ import annotations

from pathlib import Path

import yaml

from .test_snakefile import REPO, job_counts, snakemake


def test_speech_workflow_plans_corpus_xp_and_publication(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text((REPO / "config" / "workflow.yaml").read_text())
    speech = yaml.safe_load((REPO / "config" / "workflow_speech.yaml").read_text())
    assert speech["publish"] == [{"xp": "demo_speech", "as": "demo_asr"}]
    over = tmp_path / "speech.yaml"
    over.write_text(yaml.safe_dump(speech))
    # as `make demo-speech` does: the speech config over the workflow config
    done = snakemake(tmp_path, "-n", "-p", "--configfile", str(base), str(over))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    counts = job_counts(done.stdout)
    assert counts["speech_synth"] == counts["speech_manifest"] == 3
    # asr/debug: 4 epochs, 2 per train job (train.epochs_per_job in config/workflow.yaml)
    assert counts["train"] == 2 and counts["publish"] == 1
    assert "synth" not in counts and "tokens" not in counts  # the codec demo's data stays
    assert "--kind speech --voices test --n 400 --seed 3" in done.stdout
    assert "--require-text" in done.stdout
    assert Path(tmp_path / "data").exists() is False  # a dry run writes nothing
