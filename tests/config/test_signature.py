"""Signatures: Dora semantics, order independence, exclusions, the cached planning path."""

from __future__ import annotations

import hashlib
import json

import pytest

from audioflow.config import signature, signatures
from audioflow.config.composition import compose_slow, parse_overrides, search_dirs
from audioflow.config.signing import compute_delta, sign


def test_fixed_override_set_has_fixed_signature(cfg_dir):
    # Regression: changing how signatures are computed would orphan every existing XP.
    assert signature(["arch=large", "optim.lr=0.01", "+tag=x"], cfg_dir) == "efec21a9"
    # Spelled out: the sorted delta as JSON, sha1, 8 hex characters.
    delta = json.dumps([["arch", "large"], ["optim.lr", 0.01], ["tag", "x"]], sort_keys=True)
    assert hashlib.sha1(delta.encode()).hexdigest()[:8] == "efec21a9"


def test_empty_delta_signature_is_sha1_of_empty_list(cfg_dir):
    assert signature([], cfg_dir) == hashlib.sha1(b"[]").hexdigest()[:8]


def test_override_order_does_not_matter(cfg_dir):
    a = signature(["arch=large", "optim.lr=0.01", "+tag=x", "data=noisy"], cfg_dir)
    b = signature(["+tag=x", "data=noisy", "optim.lr=0.01", "arch=large"], cfg_dir)
    assert a == b


def test_group_choice_equal_to_default_counts(cfg_dir):
    assert signature(["arch=small"], cfg_dir) != signature([], cfg_dir)


def test_leaf_override_equal_to_default_does_not_count(cfg_dir):
    assert signature(["optim.lr=0.1"], cfg_dir) == signature([], cfg_dir)


def test_additions_and_deletions_count(cfg_dir):
    base = signature([], cfg_dir)
    assert signature(["+tag=x"], cfg_dir) != base
    assert signature(["~optim.ema"], cfg_dir) != base
    assert signature(["+tag=x"], cfg_dir) != signature(["+tag=y"], cfg_dir)


def test_excluded_keys_do_not_count(cfg_dir):
    base = signature(["optim.lr=0.01"], cfg_dir)
    noisy = ["device=cuda", "num_threads=8", "dataset.num_workers=6", "logging.level=DEBUG"]
    assert signature(["optim.lr=0.01", *noisy], cfg_dir) == base
    assert signature(["optim.lr=0.01", "dataset.batch_size=8"], cfg_dir) != base


def test_exclusion_patterns_come_from_config(cfg_dir):
    assert signature(["xp.exclude=[optim.*,xp.*]", "optim.lr=0.5"], cfg_dir) == signature(
        [], cfg_dir
    )


def test_environment_team_cluster_cwd_do_not_count(cfg_dir, tmp_path, monkeypatch):
    overrides = ["arch=large", "optim.lr=0.01"]
    before = signature(overrides, cfg_dir)
    team = tmp_path / "team.yaml"
    team.write_text("clusters:\n  gpu: {xp_root: /x, reference_dir: /y}\n")
    for name, value in {
        "AUDIOFLOW_TEAM": "other",
        "AUDIOFLOW_CLUSTER": "gpu",
        "AUDIOFLOW_CONFIG": str(team),
        "AUDIOFLOW_XP_DIR": str(tmp_path / "elsewhere"),
        "AUDIOFLOW_REFERENCE_DIR": str(tmp_path / "ref"),
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert signature(overrides, cfg_dir) == before


def slow_signature(overrides, cfg_dir) -> str:
    """The reference: two plain Hydra composes, no cache, no validation."""
    parsed, _ = parse_overrides(overrides)
    groups = {"arch", "data"}
    group_ovs = [ov for ov in parsed if ov.key_or_group in groups]
    base = compose_slow([ov.input_line for ov in group_ovs], cfg_dir)
    cfg = compose_slow(overrides, cfg_dir)
    return sign(compute_delta([(ov.key_or_group, ov.value()) for ov in group_ovs], base, cfg))


PLANS = [
    [],
    ["arch=large"],
    ["arch=small", "optim.lr=0.5"],
    ["data=noisy", "+tag=x", "optim.adam.betas=[0.8,0.9]"],
    ["~optim.ema", "seed=3", "arch=deep/narrow"],
    ["+extra={a: 1, b: [1, 2]}", "label=${seed}"],
    ["optim.lr=0.5", "arch=small"],
]


def test_cached_path_agrees_with_plain_hydra(cfg_dir):
    fast = signatures(PLANS, cfg_dir)
    assert fast == [slow_signature(p, cfg_dir) for p in PLANS]
    assert fast == [signature(p, cfg_dir) for p in PLANS]
    assert len(set(fast)) == len(PLANS) - 1  # the last plan is the third in another order


def test_composed_config_agrees_with_plain_hydra(cfg_dir):
    from omegaconf import OmegaConf

    from audioflow.config import compose

    for plan in PLANS:
        fast = OmegaConf.to_container(compose(plan, cfg_dir))
        assert fast == OmegaConf.to_container(compose_slow(plan, cfg_dir)), plan


def test_signatures_sees_edited_defaults(cfg_dir):
    (before,) = signatures([["optim.lr=0.5"]], cfg_dir)
    # An edited default changes the delta of an override that now equals it.
    text = (cfg_dir / "config.yaml").read_text().replace("lr: 0.1", "lr: 0.5")
    (cfg_dir / "config.yaml").write_text(text)
    (after,) = signatures([["optim.lr=0.5"]], cfg_dir)
    assert before != after == signature([], cfg_dir)


def test_signatures_reports_bad_plan(cfg_dir):
    from audioflow.config import ConfigError

    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        signatures([[], ["nope=1"]], cfg_dir)


def test_search_dirs_puts_user_first(cfg_dir):
    dirs = search_dirs(cfg_dir)
    assert dirs[0] == cfg_dir and len(dirs) == 2


def test_simple_overrides_take_the_plain_data_path(cfg_dir):
    from audioflow.config.composition import fingerprint, validate_overrides
    from audioflow.config.signing import apply_simple

    dirs = search_dirs(cfg_dir)
    stamp = fingerprint(dirs)

    def simple(overrides):
        checked = validate_overrides(overrides, dirs, stamp)
        return apply_simple({"optim": {"lr": 0.1, "adam": {}}, "seed": 1}, checked.leaf_ovs)

    assert simple(["optim.lr=0.5", "+tag=x", "optim.adam.betas=[0.1,0.2]", "seed=${optim.lr}"])
    assert not simple(["~optim.ema"])
    assert not simple(["+extra={a: 1}"])
    assert not simple(["optim.adam.betas.0=0.5"])


def test_signature_and_signatures_refuse_out_of_range_values_alike(cfg_dir):
    from audioflow.config import ConfigError

    for overrides, line in [
        (["device=tpu"], "device=tpu: use cpu"),
        (["optim.epochs=0"], "optim.epochs=0: must be at least 1"),
        # Seen through an interpolation too (the plain fast path cannot resolve it).
        (["+who=tpu", "device=${who}"], "device=tpu: use cpu"),
    ]:
        with pytest.raises(ConfigError, match=line):
            signature(overrides, cfg_dir)
        with pytest.raises(ConfigError, match=line):
            signatures([[], overrides], cfg_dir)
    assert signature(["device=cuda:1"], cfg_dir) == signature([], cfg_dir)  # excluded key
