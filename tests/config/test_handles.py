"""Signatures as handles: unique prefixes, `info` paths, `info -t`, teams from --config-dir."""

from __future__ import annotations

import threading
import time

import pytest

from audioflow.cli import main
from audioflow.config import ConfigError, get_xp, xp_lock, xp_root
from audioflow.config.handles import find_sig, merge_overrides, recipe
from audioflow.config.teams import use_config_dir


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_user_teams():
    yield
    use_config_dir(None)  # the commands set it for the whole process


def test_a_unique_prefix_finds_the_xp_and_an_ambiguous_one_lists_them(capsys, cfg_dir):
    # 17 XPs: two of them share a first hex character
    sigs = [get_xp([f"seed={s}"], cfg_dir).sig for s in range(17)]
    shared = next(s[0] for s in sigs if sum(t[0] == s[0] for t in sigs) > 1)
    with pytest.raises(ConfigError, match=f"'{shared}' starts [2-9] signatures"):
        find_sig(shared)
    lone = next(s for s in sigs if not any(t != s and t[:4] == s[:4] for t in sigs))
    assert find_sig(lone[:4]) == lone
    for argv in (["info", lone[:4]], ["info", "-f", lone[:4]]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and f"sig        {lone}" in out
    code, _, err = run(capsys, "info", shared)
    assert code == 2 and err.count("\n") == 1 and "type more of it" in err


def test_the_folder_records_what_rerunning_needs(cfg_dir):
    xp = get_xp(["seed=3", "optim.lr=0.5"], cfg_dir)
    found = recipe(xp.sig)
    assert found.overrides == ["seed=3", "optim.lr=0.5"]
    assert found.config_dir == str(cfg_dir.absolute())
    assert merge_overrides(found.overrides, ["optim.lr=0.2", "+x=1"]) == [
        "seed=3",
        "optim.lr=0.2",
        "+x=1",
    ]


def test_info_shows_the_log_and_the_listening_page(capsys, cfg_dir):
    xp = get_xp(["seed=4"], cfg_dir)
    code, out, _ = run(capsys, "info", xp.sig)
    assert code == 0 and f"log        {xp.folder / 'solver.log'}  (none yet)" in out
    assert "listen" not in out
    (xp.folder / "solver.log").write_text("started\n")
    page = xp.folder / "samples" / "epoch_1" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>\n")
    code, out, _ = run(capsys, "info", xp.sig)
    assert f"log        {xp.folder / 'solver.log'}\n" in out and f"listen     {page}" in out


def test_info_tail_prints_the_end_and_follows_while_the_xp_runs(capsys, cfg_dir):
    xp = get_xp(["seed=5"], cfg_dir)
    log = xp.folder / "solver.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    code, out, _ = run(capsys, "info", "-t", xp.sig[:5], "-n", "3")
    assert code == 0 and out == "line 27\nline 28\nline 29\n"

    held = threading.Event()

    def a_running_stage():
        with xp_lock(xp.folder, "train"):
            held.set()
            time.sleep(0.5)
            with open(log, "a") as handle:
                handle.write("written while followed\n")
            time.sleep(0.5)

    stage = threading.Thread(target=a_running_stage)
    stage.start()
    held.wait(10)
    code, out, _ = run(capsys, "info", "-t", xp.sig, "-n", "1")
    stage.join()
    assert code == 0 and out == "line 29\nwritten while followed\n"


def test_info_tail_of_another_rank(capsys, cfg_dir):
    xp = get_xp(["seed=6"], cfg_dir)
    (xp.folder / "solver.log").write_text("rank zero\n")
    (xp.folder / "solver.1.log").write_text("rank one\n")
    code, out, _ = run(capsys, "info", "-t", xp.sig, "--rank", "1")
    assert code == 0 and out == "rank one\n"
    code, _, err = run(capsys, "info", "-t", xp.sig, "--rank", "3")
    assert code == 2 and "solver.3.log" in err and "solver.1.log, solver.log" in err


TEAM = "# A team of the user's own.\nclusters:\n  local:\n    xp_root: {root}\n"


def test_a_team_is_found_in_the_config_dir_first(capsys, cfg_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("AUDIOFLOW_XP_DIR")
    monkeypatch.setenv("AUDIOFLOW_TEAM", "mylab")
    (cfg_dir / "teams").mkdir()
    (cfg_dir / "teams" / "mylab.yaml").write_text(TEAM.format(root=tmp_path / "mylab_xps"))
    code, _, err = run(capsys, "sig", "seed=2")
    assert code == 2 and "no mylab.yaml" in err and "known teams: default" in err
    code, out, _ = run(capsys, "sig", "seed=2", "--config-dir", str(cfg_dir))
    assert code == 0 and len(out.strip()) == 8
    assert xp_root() == tmp_path / "mylab_xps"
    # a user teams/default.yaml wins over the built-in one
    monkeypatch.delenv("AUDIOFLOW_TEAM")
    (cfg_dir / "teams" / "default.yaml").write_text(TEAM.format(root=tmp_path / "mine"))
    xp = get_xp(["seed=2"], cfg_dir)
    assert xp.folder.parent.parent == tmp_path / "mine"
    code, out, _ = run(capsys, "ls", "--config-dir", str(cfg_dir))
    assert code == 0 and xp.sig in out
