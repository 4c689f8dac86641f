"""Process metrics and GPU memory gauges, read at scrape time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from audioflow.monitoring.metrics import StageMetrics
from audioflow.monitoring.resources import gpu_memory


def scrape(metrics: StageMetrics) -> dict[tuple[str, str | None], float]:
    return {
        (s.name, s.labels.get("device")): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }


def test_the_standard_process_metrics_are_served():
    got = scrape(StageMetrics("abcd1234", "train", 0))
    assert got[("process_resident_memory_bytes", None)] > 10e6
    assert got[("process_cpu_seconds_total", None)] > 0
    assert ("audioflow_process_resident_memory_bytes", None) not in got  # no renamed copy


def test_scraping_never_imports_torch():
    code = (
        "import sys\n"
        "from audioflow.monitoring.metrics import StageMetrics\n"
        "m = StageMetrics('abcd1234', 'train', 0)\n"
        "names = {f.name for f in m.registry.collect()}\n"
        "assert 'process_resident_memory_bytes' in names, names\n"
        "assert not any(n.startswith('audioflow_gpu') for n in names), names\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_gpu_series_without_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        pytest.skip("CUDA is in use in this process")
    assert gpu_memory() == []
    assert not any(
        name.startswith("audioflow_gpu") for name, _ in scrape(StageMetrics("a", "b", 0))
    )


@pytest.mark.gpu
def test_gpu_memory_is_exported_once_cuda_is_in_use():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    block = torch.ones(4, 1024, 1024, device="cuda")  # 16 MiB of float32
    got = scrape(StageMetrics("abcd1234", "train", 0))
    allocated = got[("audioflow_gpu_memory_allocated_bytes", "0")]
    reserved = got[("audioflow_gpu_memory_reserved_bytes", "0")]
    assert allocated >= block.numel() * 4
    assert reserved >= allocated
