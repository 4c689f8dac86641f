"""Push a stage summary to a Prometheus Pushgateway when the stage ends.

Short stages may finish between two scrapes; the Pushgateway keeps their outcome. The
summary is grouped by ``job="audioflow"``, ``signature`` and ``stage``, and pushed with
POST (``pushadd``) so that a failed run replaces the duration and success flag but keeps
the timestamp of the last success.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from audioflow.monitoring.stage import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

JOB = "audioflow"


def push_stage_summary(
    gateway: str,
    sig: str,
    stage: str,
    duration_seconds: float,
    success: bool,
    finished_at: float,
    timeout: float = 10.0,
) -> bool:
    """Push the summary of one finished stage.

    Args:
        gateway: Pushgateway address, e.g. ``http://pushgateway:9091`` or ``host:9091``.
        sig: XP signature.
        stage: stage name.
        duration_seconds: wall time of the stage.
        success: whether the stage completed.
        finished_at: Unix time the stage ended.
        timeout: seconds to wait for the Pushgateway.

    Returns:
        True when pushed; False when the Pushgateway could not be reached (logged as a
        warning: monitoring never fails a stage).
    """
    registry = summary_registry(duration_seconds, success, finished_at)
    try:
        pushadd_to_gateway(
            gateway,
            job=JOB,
            registry=registry,
            grouping_key={"signature": sig, "stage": stage},
            timeout=timeout,
        )
    except Exception as exc:  # noqa: BLE001 - a bad address raises InvalidURL/ValueError too
        # Monitoring never fails a stage whose work is done: warn and go on.
        logger.warning("could not push the %s stage summary to %s: %s", stage, gateway, exc)
        return False
    return True


def summary_registry(
    duration_seconds: float, success: bool, finished_at: float
) -> CollectorRegistry:
    """The metrics of one stage summary (what :func:`push_stage_summary` pushes).

    Args:
        duration_seconds: wall time of the stage.
        success: whether the stage completed.
        finished_at: Unix time the stage ended (pushed only on success).

    Returns:
        A registry holding the summary gauges.
    """
    registry = CollectorRegistry()
    Gauge(
        "audioflow_stage_duration_seconds",
        "Wall time of the last run of the stage.",
        registry=registry,
    ).set(duration_seconds)
    Gauge(
        "audioflow_stage_success",
        "1 when the last run of the stage completed, 0 when it failed.",
        registry=registry,
    ).set(1.0 if success else 0.0)
    if success:
        Gauge(
            "audioflow_stage_last_success_timestamp_seconds",
            "Unix time the stage last completed.",
            registry=registry,
        ).set(finished_at)
    return registry
