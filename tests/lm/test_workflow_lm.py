"""The workflow's view of an LM XP: the token records its train jobs wait for, the summary line."""

from __future__ import annotations

import json

from audioflow.config.layout import marker_path
from audioflow.workflow.summary import describe_lm
from audioflow.workflow.tokens import token_records

MANIFESTS = ("data/synth/train/manifest.jsonl.gz", "data/synth/valid/manifest.jsonl.gz")


def test_an_lm_xp_waits_for_the_tokens_of_each_manifest_and_a_codec_xp_for_none():
    records = token_records(["solver=lm/debug"], MANIFESTS, "outputs/tokens")
    assert records == [
        "outputs/tokens/refs/demo_codec/data/synth/train/manifest.json",
        "outputs/tokens/refs/demo_codec/data/synth/valid/manifest.json",
    ]
    assert token_records(["solver=compression/debug"], MANIFESTS, "outputs/tokens") == []
    # a codec the workflow does not publish: the solver builds the cache itself
    other = ["solver=lm/debug", "compression_model_checkpoint=/some/package"]
    assert token_records(other, MANIFESTS, "outputs/tokens") == []


def test_the_summary_prints_the_held_out_ce_beside_both_baselines_and_the_accuracy(tmp_path):
    evaluate = {"ce": 0.5, "unigram_ce": 1.0, "uniform_ce": 4.159, "ce_ratio_unigram": 0.5}
    generate = {
        "cond_acc": 0.875,
        "cond_acc_prompted": 1.0,
        "classifier_acc_real": 1.0,
        "classifier_acc_codec": 0.5,
    }
    path = marker_path(tmp_path, "generate", 3)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(generate))
    line = describe_lm(evaluate, tmp_path)
    for text in ("0.500", "0.50 x unigram (1.000)", "uniform 4.159", "88%", "50%", "generate_3"):
        assert text in line
    assert describe_lm({"sisnr": 3.0}, tmp_path) is None
