"""Prometheus metrics of running stages.

``stage.StageMonitor`` is what the solver calls; ``metrics`` defines the metric set,
``resources`` the GPU memory gauges read at scrape time, ``facts`` what the loggers know
of the XP, and ``pushgateway`` the end-of-stage summary (``monitoring.port``/
``.pushgateway`` are checked when the config is composed). See docs/monitoring.md.
"""
