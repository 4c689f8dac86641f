"""The workflow summary printed by `make demo`."""

import json

from audioflow.config.grids import load_workflow_config
from audioflow.workflow.plan import XPPlan
from audioflow.workflow.summary import describe_reference, describe_xp


def test_describe_xp_reports_progress_metrics_and_listening_page(tmp_path):
    folder = tmp_path / "xps" / "0123abcd"
    stages = folder / "stages"
    stages.mkdir(parents=True)
    (stages / "valid_1.json").write_text(json.dumps({"loss": 2.5, "sisnr_q1": 1.0}))
    (stages / "evaluate_1.json").write_text(json.dumps({"sisnr": 3.25, "note": "x"}))
    page = folder / "samples" / "epoch_1" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    plan = XPPlan("demo", "0123abcd", ("solver=compression/debug",), 2, 1, 1, ())
    text = "\n".join(describe_xp(plan, folder))
    assert "XP demo (0123abcd): 1/2 epochs validated" in text
    assert "valid:     loss=2.5" in text and "sisnr_q1" not in text
    assert "evaluate:  sisnr=3.25 (evaluate_1)" in text
    assert f"listen:    {page}" in text
    assert "audioflow info 0123abcd" in text


def test_describe_new_xp_has_no_metrics(tmp_path):
    plan = XPPlan("demo", "0123abcd", (), 2, 1, 1, ())
    lines = describe_xp(plan, tmp_path / "missing")
    assert lines[0].endswith("0/2 epochs validated")
    assert not any("valid:" in line or "listen:" in line for line in lines)


def test_later_config_files_override_earlier_ones_by_key(tmp_path):
    base, extra = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base.write_text("xps: [{name: a}]\ntrain: {epochs_per_job: 1}\nlauncher: local\n")
    extra.write_text("xps: [{name: b}]\ntrain: {epochs_per_job: 2}\n")
    config = load_workflow_config([base, extra])
    assert config == {"xps": [{"name": "b"}], "train": {"epochs_per_job": 2}, "launcher": "local"}


def test_reference_line_says_which_xp_it_holds(tmp_path):
    folder = tmp_path / "reference" / "ref"
    line = describe_reference("ref", "demo", "0123abcd", folder)
    assert line.endswith("[not published yet]")
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"signature": "0123abcd"}))
    assert describe_reference("ref", "demo", "0123abcd", folder).endswith("[published]")
    line = describe_reference("ref", "demo", "feedbeef", folder)
    assert line.endswith("[holds XP 0123abcd; run snakemake to publish feedbeef]")


def test_grids_given_with_config_are_listed(tmp_path, monkeypatch, capsys):
    from audioflow.workflow.summary import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xps"))
    (tmp_path / "workflow.yaml").write_text("xps: [{name: one, overrides: [seed=1]}]\n")
    (tmp_path / "g.yaml").write_text("base: [seed=2]\ngrid:\n  - product: {optim.lr: [0.1]}\n")
    argv = ["--configfile", "workflow.yaml"]
    assert main(argv) == 0
    assert "XP g-0" not in capsys.readouterr().out
    assert main([*argv, "--config", 'grids=["g.yaml"]']) == 0
    out = capsys.readouterr().out
    assert "XP one (" in out and "XP g-0 (" in out
    assert main([*argv, "--config", "grids"]) == 2
    assert "--config grids: write KEY=VALUE" in capsys.readouterr().err
