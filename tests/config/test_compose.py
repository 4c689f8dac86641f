"""Composition and validation: every kind of bad override gives one clear line, all at once."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from audioflow.config import ConfigError, compose, get_xp


def problems(overrides, cfg_dir) -> list[str]:
    with pytest.raises(ConfigError) as info:
        compose(overrides, cfg_dir)
    assert info.value.exit_code == 2
    return info.value.problems


def test_defaults_and_overrides_compose(cfg_dir):
    cfg = compose(["arch=large", "optim.lr=0.5", "+extra.name=x", "data=noisy"], cfg_dir)
    assert cfg.arch.dim == 64
    assert cfg.optim.lr == 0.5
    assert cfg.extra.name == "x"
    assert cfg.snr == 5.0
    assert compose([], cfg_dir).arch.dim == 8


def test_nested_group_option(cfg_dir):
    assert compose(["arch=deep/narrow"], cfg_dir).arch.layers == 16


def test_user_folder_is_searched_before_builtin(cfg_dir):
    # The user's config.yaml replaces the built-in one: no built-in dataset keys.
    assert "arch" in compose([], cfg_dir) and "datasource" not in compose([], cfg_dir)


def test_user_folder_adds_group_options_to_builtin(tmp_path):
    user = tmp_path / "mine"
    (user / "conditioner").mkdir(parents=True)
    (user / "conditioner" / "tagged.yaml").write_text("# @package _global_\nconditioner: tag\n")
    cfg = compose(["conditioner=tagged", "solver=compression/default"], user)
    assert cfg.conditioner == "tag" and "datasource" in cfg


def test_unknown_key_names_closest(cfg_dir):
    (line,) = problems(["optim.lrr=1"], cfg_dir)
    assert line.startswith("optim.lrr=1: unknown key 'optim.lrr'")
    assert "optim.lr" in line and "+optim.lrr=1" in line


def test_unknown_leaf_name_found_by_last_part(cfg_dir):
    (line,) = problems(["lr=1"], cfg_dir)
    assert "did you mean optim.lr" in line


def test_wrong_types(cfg_dir):
    lines = problems(
        ["optim.epochs=abc", "flag=maybe", "optim.lr=fast", "optim.adam=3", "optim.adam.betas=1"],
        cfg_dir,
    )
    assert len(lines) == 5
    assert "optim.epochs expects an integer (default 2), got 'abc'" in lines[0]
    assert "flag expects true or false" in lines[1]
    assert "optim.lr expects a number" in lines[2]
    assert "optim.adam is a section" in lines[3]
    assert "optim.adam.betas expects a list" in lines[4]


def test_compatible_types_pass(cfg_dir):
    cfg = compose(
        ["optim.lr=1", "label=2024", "optim.epochs=null", "seed=${optim.epochs}"], cfg_dir
    )
    assert cfg.optim.lr == 1 and cfg.label == 2024 and cfg.optim.epochs is None


def test_missing_group_option_lists_options_closest_first(cfg_dir):
    (line,) = problems(["arch=larg"], cfg_dir)
    assert line.startswith("arch=larg: group 'arch' has no option 'larg'; available: large,")
    assert "small" in line and "deep/narrow" in line


def test_all_problems_reported_together(cfg_dir):
    lines = problems(["optim.lrr=1", "arch=nope", "seed=x", "+flag=false", "a b"], cfg_dir)
    assert len(lines) == 5, lines
    joined = "\n".join(lines)
    for needle in ("'a b'", "arch=nope", "optim.lrr", "seed=x", "+flag=false"):
        assert needle in joined


def test_sweeps_and_teams_refused(cfg_dir):
    lines = problems(["optim.lr=0.1,0.2", "arch=small,large", "teams=foo"], cfg_dir)
    assert len(lines) == 3
    assert "sweeps are not supported" in lines[0] and "sweeps are not supported" in lines[1]
    assert "AUDIOFLOW_TEAM" in lines[2]


def test_delete_override(cfg_dir):
    assert "ema" not in compose(["~optim.ema"], cfg_dir).optim
    (line,) = problems(["~optim.nope"], cfg_dir)
    assert "unknown key 'optim.nope'" in line


def test_bad_config_dir(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        compose([], tmp_path / "missing")


def test_broken_yaml_is_one_clear_line(cfg_dir):
    (cfg_dir / "arch" / "broken.yaml").write_text("dim: [1, 2\n")
    (line,) = problems(["arch=broken"], cfg_dir)
    assert "arch=broken" in line


def test_bad_overrides_write_nothing(cfg_dir, clean_env):
    with pytest.raises(ConfigError):
        get_xp(["optim.lrr=1"], cfg_dir)
    assert not clean_env.exists()


def test_missing_value_refused_before_writing(cfg_dir, clean_env):
    with pytest.raises(ConfigError, match=r"label has no value \(\?\?\?\); set it with label="):
        get_xp(["label=???"], cfg_dir)
    assert not clean_env.exists()


def test_bad_interpolation_refused_before_writing(cfg_dir, clean_env):
    with pytest.raises(ConfigError, match="resolving the config failed at label: .*nowhere.key"):
        get_xp(["label=${nowhere.key}"], cfg_dir)
    assert not clean_env.exists()


def test_returned_config_is_a_private_copy(cfg_dir):
    cfg = compose([], cfg_dir)
    cfg.optim.lr = 123.0
    assert compose([], cfg_dir).optim.lr == 0.1
    assert OmegaConf.is_struct(cfg)
