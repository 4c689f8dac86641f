"""Range checks of the composed config's core values, before anything is signed or written.

Types are checked per override (``validate``); these are the values a type check lets
through but no run can use: an XP of ``optim.epochs=0`` would be "done" without
training, ``device=tpu`` would fail only once the solver starts. Keys a user config does
not have are skipped.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from .layout import STAGES

PRECISIONS = ("fp32", "bf16", "fp16")
# What torch.device accepts for the accelerators audioflow runs on.
_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")
_AT_LEAST_ONE = ("optim.epochs", "optim.updates_per_epoch", "dataset.batch_size")


def check_values(cfg: DictConfig | dict) -> list[str]:
    """One line per value out of range (empty when all is well), of a composed config or
    its plain data."""
    problems = []
    for key in _AT_LEAST_ONE:
        value = _select(cfg, key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            problems.append(f"{key}={value}: must be at least 1")
    for key in ("dataset.num_workers", *(f"dataset.{s}.num_workers" for s in STAGES)):
        value = _select(cfg, key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            problems.append(
                f"{key}={value}: DataLoader workers must be 0 (load in the main process) or more"
            )
    lr = _select(cfg, "optim.lr")
    # An infinite LR is a run that diverges, which the solver's non-finite policy reports;
    # NaN or a negative LR is never meant and fails deep inside torch (0 freezes weights).
    if isinstance(lr, int | float) and not isinstance(lr, bool) and (math.isnan(lr) or lr < 0):
        problems.append(f"optim.lr={lr}: the learning rate must be a number, 0 or more (e.g. 1e-4)")
    precision = _select(cfg, "optim.precision")
    if precision is not None and precision not in PRECISIONS:
        problems.append(f"optim.precision={precision}: use one of {', '.join(PRECISIONS)}")
    device = _select(cfg, "device")
    if device is not None and not (isinstance(device, str) and _DEVICE.fullmatch(device)):
        problems.append(f"device={device}: use cpu, cuda, cuda:N or mps")
    port = _select(cfg, "monitoring.port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
    ):
        problems.append(f"monitoring.port={port}: give a TCP port 1-65535, or 0 for no metrics")
    gateway = _select(cfg, "monitoring.pushgateway")
    if gateway is not None and not _is_http_address(gateway):
        problems.append(
            f"monitoring.pushgateway={gateway}: give an address such as "
            "http://pushgateway:9091, or null to push nothing"
        )
    return problems


def _is_http_address(value) -> bool:
    """``http(s)://host[:port][/path]`` with a numeric port: what the Pushgateway client opens."""
    if not isinstance(value, str):
        return False
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.hostname)


# Every key check_values reads.
CHECKED_KEYS = (
    *_AT_LEAST_ONE,
    "dataset.num_workers",
    *(f"dataset.{stage}.num_workers" for stage in STAGES),
    "optim.lr",
    "optim.precision",
    "device",
    "monitoring.port",
    "monitoring.pushgateway",
)


def plain_values_need_compose(data: dict) -> bool:
    """Whether the plain (unresolved) data of a config cannot be range-checked as it is:
    a checked value is an interpolation, or :func:`check_values` refuses one (the composed
    config then gives the error, with interpolations resolved)."""
    for key in CHECKED_KEYS:
        value = _select(data, key)
        if isinstance(value, str) and "${" in value:
            return True
    return bool(check_values(data))


def _select(cfg: DictConfig | dict, key: str):
    if isinstance(cfg, dict):
        node = cfg
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:  # noqa: BLE001 - an interpolation error is reported by the resolver
        return None
