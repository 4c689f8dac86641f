"""XP folders: files written, reopening by signature, drift refused and accepted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from audioflow.config import ConfigError, DriftError, get_xp, xp_from_sig, xp_root


def test_get_xp_writes_overrides_and_resolved_config(cfg_dir, clean_env):
    xp = get_xp(["optim.lr=0.5", "label=${seed}"], cfg_dir)
    assert xp.folder == clean_env / "xps" / xp.sig == xp_root() / "xps" / xp.sig
    assert json.loads((xp.folder / "overrides.json").read_text()) == [
        "optim.lr=0.5",
        "label=${seed}",
    ]
    stored = yaml.safe_load((xp.folder / "config.yaml").read_text())
    assert stored["optim"]["lr"] == 0.5 and stored["label"] == 1  # interpolation resolved
    assert dict(xp.delta) == {"optim.lr": 0.5, "label": "${seed}"}
    leftovers = [p.name for p in xp.folder.iterdir() if p.name.startswith(".")]
    assert leftovers == [".config.lock"]  # no temp files left


def test_same_xp_reopens_same_folder(cfg_dir):
    a = get_xp(["optim.lr=0.5", "arch=large"], cfg_dir)
    b = get_xp(["arch=large", "optim.lr=0.5"], cfg_dir)
    assert a.folder == b.folder
    # The first creator's overrides are kept.
    assert json.loads((a.folder / "overrides.json").read_text()) == ["optim.lr=0.5", "arch=large"]


def test_xp_from_sig(cfg_dir):
    xp = get_xp(["arch=large"], cfg_dir)
    again = xp_from_sig(xp.sig)
    assert again.folder == xp.folder and again.overrides == ["arch=large"]
    assert again.cfg.arch.dim == 64 and again.delta == [("arch", "large")]


def test_xp_from_unknown_sig(cfg_dir):
    with pytest.raises(ConfigError, match="no XP 'deadbeef' under .*audioflow ls"):
        xp_from_sig("deadbeef")


def _edit_default(cfg_dir, old, new):
    path = cfg_dir / "config.yaml"
    path.write_text(path.read_text().replace(old, new))


def test_drift_is_refused_with_each_key(cfg_dir):
    xp = get_xp(["optim.lr=0.5"], cfg_dir)
    before = (xp.folder / "config.yaml").read_text()
    _edit_default(cfg_dir, "epochs: 2", "epochs: 3")
    _edit_default(cfg_dir, "batch_size: 4", "batch_size: 6")
    with pytest.raises(DriftError) as info:
        get_xp(["optim.lr=0.5"], cfg_dir)
    err = info.value
    assert err.exit_code == 2
    assert err.changes == {"dataset.batch_size": (4, 6), "optim.epochs": (2, 3)}
    assert "  dataset.batch_size: 4 -> 6" in err.problems
    assert "  optim.epochs: 2 -> 3" in err.problems
    assert "--accept-drift" in err.problems[-1] and "accept_drift=True" in err.problems[-1]
    assert (xp.folder / "config.yaml").read_text() == before
    assert not (xp.folder / "drift.json").exists()


def test_drift_accepted_is_recorded(cfg_dir):
    xp = get_xp([], cfg_dir)
    _edit_default(cfg_dir, "epochs: 2", "epochs: 3")
    again = get_xp([], cfg_dir, accept_drift=True)
    assert again.sig == xp.sig
    (record,) = json.loads((xp.folder / "drift.json").read_text())
    assert record["old"] == {"optim.epochs": 2} and record["new"] == {"optim.epochs": 3}
    assert record["time"].endswith("Z")
    assert yaml.safe_load((xp.folder / "config.yaml").read_text())["optim"]["epochs"] == 3
    get_xp([], cfg_dir)  # accepted once: the new config is now the stored one


def test_added_and_removed_keys_are_drift(cfg_dir):
    get_xp([], cfg_dir)
    _edit_default(cfg_dir, "label: base\n", "tag: t\n")
    with pytest.raises(DriftError) as info:
        get_xp([], cfg_dir)
    assert info.value.changes == {"label": ("base", "<absent>"), "tag": ("<absent>", "t")}


def test_excluded_keys_are_not_drift(cfg_dir):
    xp = get_xp([], cfg_dir)
    _edit_default(cfg_dir, "level: INFO", "level: DEBUG")
    again = get_xp(["device=cuda"], cfg_dir)
    assert again.sig == xp.sig
    stored = yaml.safe_load((xp.folder / "config.yaml").read_text())
    assert stored["device"] == "cuda" and stored["logging"]["level"] == "DEBUG"
    assert not (xp.folder / "drift.json").exists()


def test_ranks_accepting_drift_together_record_it_once(cfg_dir, clean_env):
    # Every rank of a torchrun job opens the XP; the drift must be recorded once.
    xp = get_xp([], cfg_dir)
    _edit_default(cfg_dir, "epochs: 2", "epochs: 5")
    code = f"from audioflow.config import get_xp; get_xp([], {str(cfg_dir)!r}, accept_drift=True)"
    env = {**os.environ, "AUDIOFLOW_XP_DIR": str(clean_env)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    records = json.loads((xp.folder / "drift.json").read_text())
    assert len(records) == 1 and records[0]["new"] == {"optim.epochs": 5}
