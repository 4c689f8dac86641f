"""Process and GPU memory, read at scrape time rather than on every update.

The collector reads the resident memory of this process and, when the stage runs on a
GPU, the memory the PyTorch caching allocator holds. Reading at scrape time costs the
training loop nothing between scrapes.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_memory_bytes() -> float:
    """Resident set size of this process in bytes.

    Returns:
        Current RSS from ``/proc/self/statm`` on Linux; elsewhere the peak RSS from
        ``getrusage`` (the best portable figure).
    """
    try:
        with open("/proc/self/statm") as f:
            return float(int(f.read().split()[1]) * _PAGE_SIZE)
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in kilobytes on Linux and bytes on macOS.
        return float(peak if sys.platform == "darwin" else peak * 1024)


def gpu_memory() -> list[tuple[str, float, float]]:
    """Allocated and reserved CUDA memory per device, in bytes.

    Only looks at torch when the training process already imported it and already
    initialised CUDA: a scrape must never import torch or create a CUDA context.

    Returns:
        ``[(device_index, allocated_bytes, reserved_bytes), ...]``; empty off GPU.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return []
        return [
            (str(i), float(torch.cuda.memory_allocated(i)), float(torch.cuda.memory_reserved(i)))
            for i in range(torch.cuda.device_count())
        ]
    except (RuntimeError, AssertionError):
        # A broken driver must not break the scrape of the other metrics.
        return []


class ResourceCollector(Collector):
    """Memory gauges labelled like the stage metrics.

    Args:
        labels: the stage labels (signature, stage, rank).
    """

    def __init__(self, labels: dict[str, str]) -> None:
        self.names = list(labels)
        self.values = list(labels.values())

    def describe(self) -> list[GaugeMetricFamily]:
        # Describing without reading keeps registration cheap and side-effect free.
        return [
            GaugeMetricFamily("audioflow_process_resident_memory_bytes", "", labels=self.names),
            GaugeMetricFamily(
                "audioflow_gpu_memory_allocated_bytes", "", labels=[*self.names, "device"]
            ),
            GaugeMetricFamily(
                "audioflow_gpu_memory_reserved_bytes", "", labels=[*self.names, "device"]
            ),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rss = GaugeMetricFamily(
            "audioflow_process_resident_memory_bytes",
            "Resident memory of the process serving the metrics.",
            labels=self.names,
        )
        rss.add_metric(self.values, resident_memory_bytes())
        yield rss
        gpus = gpu_memory()
        if not gpus:
            return
        allocated = GaugeMetricFamily(
            "audioflow_gpu_memory_allocated_bytes",
            "CUDA memory held by tensors on each device.",
            labels=[*self.names, "device"],
        )
        reserved = GaugeMetricFamily(
            "audioflow_gpu_memory_reserved_bytes",
            "CUDA memory reserved by the PyTorch caching allocator on each device.",
            labels=[*self.names, "device"],
        )
        for device, alloc, res in gpus:
            allocated.add_metric([*self.values, device], alloc)
            reserved.add_metric([*self.values, device], res)
        yield allocated
        yield reserved
