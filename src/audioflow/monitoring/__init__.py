"""Prometheus metrics of running stages.

``stage.StageMonitor`` is what the solver calls; ``metrics`` defines the metric set,
``resources`` the memory gauges read at scrape time, ``pushgateway`` the end-of-stage
summary and ``builders`` the monitor built from ``cfg.monitoring``. See docs/monitoring.md.
"""
