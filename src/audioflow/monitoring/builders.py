"""Build a StageMonitor from an XP config (the only monitoring code that reads config)."""

from __future__ import annotations

from typing import Any

from audioflow.config.errors import ConfigError
from audioflow.monitoring.stage import StageMonitor


def monitoring_settings(monitoring_cfg: Any) -> tuple[int, str | None]:
    """Check and return ``(port, pushgateway)`` from the ``monitoring`` config group.

    Args:
        monitoring_cfg: mapping with ``port`` (0 = off) and ``pushgateway`` (null = off),
            or None for both off.

    Returns:
        The port as an int and the Pushgateway address or None.

    Raises:
        ConfigError: a port outside 0-65535 or a Pushgateway that is not a non-empty string.
    """
    if monitoring_cfg is None:
        return 0, None
    port = monitoring_cfg.get("port", 0)
    gateway = monitoring_cfg.get("pushgateway", None)
    problems = []
    if port is None:
        port = 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        problems.append(
            f"monitoring.port={port!r}: give a TCP port number 1-65535, or 0 to serve no metrics"
        )
    if gateway is not None and (not isinstance(gateway, str) or not gateway.strip()):
        problems.append(
            f"monitoring.pushgateway={gateway!r}: give an address such as "
            "http://pushgateway:9091, or null to push nothing"
        )
    if problems:
        raise ConfigError(problems)
    return port, gateway


def build_stage_monitor(cfg: Any, sig: str, stage: str, rank: int) -> StageMonitor:
    """The StageMonitor of one stage as ``cfg.monitoring`` asks.

    Args:
        cfg: the XP config (reads ``monitoring.port`` and ``monitoring.pushgateway``).
        sig: XP signature.
        stage: stage name.
        rank: distributed rank of this process.

    Returns:
        A monitor, inert on ranks other than 0 and when monitoring is off.

    Raises:
        ConfigError: invalid monitoring settings.
    """
    port, gateway = monitoring_settings(cfg.get("monitoring"))
    return StageMonitor(sig, stage, rank=rank, port=port, pushgateway=gateway)
