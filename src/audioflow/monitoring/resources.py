"""GPU memory, read at scrape time rather than on every update.

When the stage runs on a GPU, the collector reads the memory the PyTorch caching
allocator holds (the process's own memory and CPU time come from prometheus_client's
standard process collector). Reading at scrape time costs the training loop nothing
between scrapes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


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
    """GPU memory gauges labelled like the stage metrics.

    Args:
        labels: the stage labels (signature, stage, rank).
    """

    def __init__(self, labels: dict[str, str]) -> None:
        self.names = list(labels)
        self.values = list(labels.values())

    def describe(self) -> list[GaugeMetricFamily]:
        # Describing without reading keeps registration cheap and side-effect free.
        return [
            GaugeMetricFamily(
                "audioflow_gpu_memory_allocated_bytes", "", labels=[*self.names, "device"]
            ),
            GaugeMetricFamily(
                "audioflow_gpu_memory_reserved_bytes", "", labels=[*self.names, "device"]
            ),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
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
