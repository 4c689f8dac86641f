"""`audioflow run -f SIG` (continue, branch), `--clear` and a bare `-d`, on a user solver."""

from __future__ import annotations

import json

import pytest
import torch

from audioflow import cli
from audioflow.config import signature


def _run(capfd, *argv):
    code = cli.main(["run", *argv])
    out, err = capfd.readouterr()
    return code, out, err


def _history(folder):
    return json.loads((folder / "history.json").read_text())


def test_follow_continues_an_xp_without_retyping_anything(user_dir, capfd, tmp_path):
    args = ["solver=my_solver", "optim.epochs=2", "--config-dir", str(user_dir)]
    code, _, err = _run(capfd, *args, "--stage", "train", "--epoch", "1")
    assert code == 0, err
    (folder,) = (tmp_path / "xp_root" / "xps").iterdir()
    code, out, err = _run(capfd, "-f", folder.name[:4])  # no overrides, no --config-dir
    assert code == 0, err
    assert out.strip() == f"continuing XP {folder.name}"
    # the same XP went on: epoch 1 (train only) validated, epoch 2 run; the solver class was
    # found in the recorded config folder, which the command line did not name
    assert [e["epoch"] for e in _history(folder)] == [1, 2]
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]


def test_follow_with_overrides_branches_a_new_xp(user_dir, capfd, tmp_path):
    args = ["solver=my_solver", "optim.epochs=1", "optim.lr=1e-2", "--config-dir", str(user_dir)]
    assert _run(capfd, *args)[0] == 0
    (old,) = (tmp_path / "xp_root" / "xps").iterdir()
    code, out, err = _run(capfd, "-f", old.name, "optim.lr=3e-3")
    assert code == 0, err
    new = signature(["solver=my_solver", "optim.epochs=1", "optim.lr=3e-3"], user_dir)
    assert out.strip() == f"XP {new}: a new XP from {old.name} with optim.lr=3e-3"
    folder = old.parent / new
    assert json.loads((folder / "overrides.json").read_text()) == [
        "solver=my_solver",
        "optim.epochs=1",
        "optim.lr=3e-3",
    ]
    assert len(_history(folder)) == 1 and len(_history(old)) == 1


def test_clear_asks_on_a_terminal_and_needs_yes_otherwise(user_dir, capfd, tmp_path, monkeypatch):
    args = ["solver=my_solver", "optim.epochs=1", "--config-dir", str(user_dir)]
    assert _run(capfd, *args)[0] == 0
    (folder,) = (tmp_path / "xp_root" / "xps").iterdir()
    (folder / "note.txt").write_text("from the first run\n")
    with open(folder / "solver.log", "a") as log:
        log.write("a line of the first run\n")
    code, _, err = _run(capfd, *args, "--clear")  # stdin is not a terminal under pytest
    assert code == 2 and err.count("\n") == 1 and "pass --yes" in err
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda question: "n")
    code, _, err = _run(capfd, *args, "--clear")
    assert code == 2 and "kept XP" in err and (folder / "note.txt").exists()
    monkeypatch.setattr("builtins.input", lambda question: "y")
    code, out, err = _run(capfd, *args, "--clear")
    assert code == 0, err
    assert f"deleted {folder}" in out and not (folder / "note.txt").exists()
    assert "the first run" not in (folder / "solver.log").read_text()  # a new log: afresh
    assert len(_history(folder)) == 1
    code, out, err = _run(capfd, *args, "--clear", "--yes")
    assert code == 0 and f"deleted {folder}" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="-d alone uses every GPU there")
def test_a_bare_d_runs_one_process_on_cpu(user_dir, capfd, tmp_path):
    args = ["solver=my_solver", "optim.epochs=1", "--config-dir", str(user_dir)]
    code, _, err = _run(capfd, "-d", *args)
    assert code == 0, err
    (folder,) = (tmp_path / "xp_root" / "xps").iterdir()
    assert "1 process(es)" in (folder / "solver.log").read_text()
