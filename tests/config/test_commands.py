"""The light commands: sig, info, ls, clear (through the real `audioflow` entry point)."""

from __future__ import annotations

import json

import pytest

from audioflow.cli import main
from audioflow.config import get_xp, signature, xp_lock


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sig_prints_signature(capsys, cfg_dir):
    code, out, _ = run(capsys, "sig", "arch=large", "--config-dir", str(cfg_dir))
    assert code == 0 and out.strip() == signature(["arch=large"], cfg_dir)


def test_sig_bad_overrides_exit_2_one_line_each(capsys, cfg_dir, clean_env):
    code, out, err = run(capsys, "sig", "--config-dir", str(cfg_dir), "optim.lrr=1", "arch=x")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("audioflow sig: ") for line in lines)
    assert not clean_env.exists()


def test_info_by_overrides_creates_nothing(capsys, cfg_dir, clean_env):
    code, out, _ = run(capsys, "info", "optim.lr=0.5", "--config-dir", str(cfg_dir))
    assert code == 0
    assert "(not created yet)" in out and "optim.lr = 0.5" in out and "status     new" in out
    assert not clean_env.exists()


def test_info_by_sig_shows_status_and_metrics(capsys, cfg_dir):
    xp = get_xp(["optim.lr=0.5"], cfg_dir)
    history = [{"epoch": 1, "train": {"loss": 0.5}, "valid": {"loss": 0.25, "sisnr": 3.0}}]
    (xp.folder / "history.json").write_text(json.dumps(history))
    (xp.folder / "best.json").write_text(json.dumps({"metric": "loss", "value": 0.25, "epoch": 1}))
    code, out, _ = run(capsys, "info", xp.sig)
    assert code == 0
    assert f"sig        {xp.sig}" in out and "overrides  optim.lr=0.5" in out
    assert "status     partial, epoch 1/2" in out
    assert "valid    loss=0.25 sisnr=3" in out and "best       loss=0.25 @1" in out


def test_info_unknown_sig(capsys):
    code, _, err = run(capsys, "info", "0badc0de")
    assert code == 2 and "no XP '0badc0de'" in err


def test_ls_lists_status_epoch_best(capsys, cfg_dir):
    new = get_xp(["arch=large"], cfg_dir)
    done = get_xp(["optim.lr=0.5"], cfg_dir)
    history = [{"epoch": e, "valid": {"loss": 1.0 / e}} for e in (1, 2)]
    (done.folder / "history.json").write_text(json.dumps(history))
    (done.folder / "best.json").write_text(json.dumps({"metric": "loss", "value": 0.5}))
    running = get_xp(["seed=7"], cfg_dir)
    with xp_lock(running.folder, "valid"):
        code, out, _ = run(capsys, "ls")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["SIG", "STATUS", "EPOCH", "valid.loss", "OVERRIDES"]
    lines = {line.split()[0]: line.split() for line in rows}
    assert lines[new.sig][1:4] == ["new", "0/2", "-"]
    assert lines[done.sig][1:5] == ["done", "2/2", "0.5", "optim.lr=0.5"]
    assert lines[running.sig][1] == "running"


def test_ls_empty(capsys, clean_env):
    code, out, err = run(capsys, "ls")
    assert code == 0 and out == "" and "no XPs under" in err


def test_clear_asks_then_deletes(capsys, cfg_dir, monkeypatch):
    xp = get_xp(["arch=large"], cfg_dir)
    monkeypatch.setattr("builtins.input", lambda question: "n")
    code, out, _ = run(capsys, "clear", xp.sig)
    assert code == 0 and "kept" in out and xp.folder.exists()
    monkeypatch.setattr("builtins.input", lambda question: "y")
    code, out, _ = run(capsys, "clear", xp.sig)
    assert code == 0 and "deleted" in out and not xp.folder.exists()
    assert list(xp.folder.parent.iterdir()) == []


def test_clear_yes_and_running_refused(capsys, cfg_dir):
    a = get_xp(["arch=large"], cfg_dir)
    b = get_xp(["seed=3"], cfg_dir)
    with xp_lock(b.folder, "train"):
        code, _, err = run(capsys, "clear", a.sig, b.sig, "--yes")
    assert code == 2 and "is running" in err
    assert not a.folder.exists() and b.folder.exists()


def test_clear_takes_a_signature_never_a_path(capsys, cfg_dir, tmp_path):
    xp = get_xp(["arch=large"], cfg_dir)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.yaml").write_text("precious: true\n")
    for target in (str(victim), f"../{xp.sig}", "xyz"):
        code, _, err = run(capsys, "clear", target, "--yes")
        assert code == 2 and f"'{target}' is not a signature" in err
    assert sorted(p.name for p in victim.iterdir()) == ["config.yaml"]
    code, out, _ = run(capsys, "clear", f"{xp.sig}/", "--yes")  # as shell completion types it
    assert code == 0 and not xp.folder.exists()


@pytest.mark.parametrize("command", ["sig", "info", "ls", "clear"])
def test_help(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "--config-dir" in capsys.readouterr().out
