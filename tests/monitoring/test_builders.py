"""build_stage_monitor reads cfg.monitoring and refuses bad values with one line each."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from audioflow.config.errors import ConfigError
from audioflow.monitoring.builders import build_stage_monitor


def cfg(**monitoring):
    return OmegaConf.create({"monitoring": {"port": 0, "pushgateway": None, **monitoring}})


def test_builds_an_active_monitor_on_rank_zero():
    monitor = build_stage_monitor(cfg(port=9200), "abcd1234", "train", rank=0)
    assert monitor.active and monitor.requested_port == 9200 and monitor.pushgateway is None
    assert not build_stage_monitor(cfg(port=9200), "abcd1234", "train", rank=1).active
    assert not build_stage_monitor(cfg(), "abcd1234", "train", rank=0).active


def test_pushgateway_alone_activates_the_monitor():
    monitor = build_stage_monitor(cfg(pushgateway="http://pg:9091"), "abcd1234", "valid", 0)
    assert monitor.active and monitor.requested_port == 0


def test_bad_values_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError) as err:
        build_stage_monitor(cfg(port=70000, pushgateway=""), "abcd1234", "train", 0)
    assert err.value.exit_code == 2
    assert [p.split(":")[0] for p in err.value.problems] == [
        "monitoring.port=70000",
        "monitoring.pushgateway=''",
    ]
