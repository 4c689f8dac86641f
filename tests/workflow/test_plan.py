"""XP plans: stage epochs, and the on-disk cache that keeps planning fast."""

import json

import pytest

from audioflow.config.grids import XPSpec
from audioflow.workflow.plan import XPPlan, by_signature, resolve_plans


class CountingResolver:
    """A resolver with fixed facts that records which override lists it was asked for."""

    def __init__(self):
        self.calls = []

    def __call__(self, overrides_list, config_dir):
        self.calls.append([list(o) for o in overrides_list])
        return [
            {
                "sig": f"{abs(hash(tuple(o))) % 16**8:08x}",
                "epochs": 3,
                "evaluate_every": 2,
                "generate_every": 0,
                "manifests": ["data/m.jsonl.gz"],
            }
            for o in overrides_list
        ]


def test_stage_epochs():
    plan = XPPlan("x", "0123abcd", (), 5, 2, 0, ())
    assert plan.stage_epochs("train", 2) == [2, 4, 5]
    assert plan.stage_epochs("valid") == [1, 2, 3, 4, 5]
    assert plan.stage_epochs("evaluate") == [2, 4, 5]
    assert plan.stage_epochs("generate") == [5]
    with pytest.raises(ValueError, match="unknown stage"):
        plan.stage_epochs("test")


def test_cache_resolves_only_new_overrides(tmp_path):
    cache = tmp_path / "plans.json"
    watched = tmp_path / "config"
    watched.mkdir()
    (watched / "a.yaml").write_text("x: 1\n")
    resolver = CountingResolver()
    specs = [XPSpec("a", ("seed=1",)), XPSpec("b", ("seed=2",))]
    plans = resolve_plans(specs, cache_file=cache, watched=[watched], resolver=resolver)
    assert [p.name for p in plans] == ["a", "b"] and plans[0].manifests == ("data/m.jsonl.gz",)
    assert resolver.calls == [[["seed=1"], ["seed=2"]]]

    again = resolve_plans(
        specs + [XPSpec("c", ("seed=3",))], cache_file=cache, watched=[watched], resolver=resolver
    )
    assert resolver.calls[1:] == [[["seed=3"]]]
    assert again[:2] == plans

    # A changed config file invalidates every cached plan.
    (watched / "a.yaml").write_text("x: 2\n")
    resolve_plans(specs, cache_file=cache, watched=[watched], resolver=resolver)
    assert resolver.calls[2:] == [[["seed=1"], ["seed=2"]]]


def test_damaged_cache_is_rebuilt(tmp_path):
    cache = tmp_path / "plans.json"
    cache.write_text("{not json")
    resolver = CountingResolver()
    resolve_plans([XPSpec("a", ("seed=1",))], cache_file=cache, resolver=resolver)
    assert len(resolver.calls) == 1
    assert "plans" in json.loads(cache.read_text())


def test_by_signature_keeps_the_first_name():
    one = XPPlan("one", "0123abcd", ("seed=1",), 1, 1, 1, ())
    two = XPPlan("two", "0123abcd", ("seed=1", "device=cuda"), 1, 1, 1, ())
    assert by_signature([one, two]) == {"0123abcd": one}


def test_real_resolver_agrees_with_the_public_signature(tmp_path):
    from audioflow.config import compose, signature

    overrides = ("solver=compression/debug", "optim.epochs=3", "evaluate.every=2")
    plan = resolve_plans([XPSpec("demo", overrides)], cache_file=tmp_path / "plans.json")[0]
    cfg = compose(list(overrides))
    assert plan.sig == signature(list(overrides))
    assert (plan.epochs, plan.evaluate_every) == (3, 2)
    assert plan.generate_every == int(cfg.generate.every)
    assert set(plan.manifests) == set(cfg.datasource.values())
    # Reordered overrides are the same XP.
    again = resolve_plans([XPSpec("demo", tuple(reversed(overrides)))])
    assert again[0].sig == plan.sig
