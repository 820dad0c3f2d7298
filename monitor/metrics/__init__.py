"""Every metric mailprobe exports is named in this package, one module per source.

``checks`` names the metrics every check has; a source's module (``dns``, ``postfix``,
...) names that source's own metrics, including the :class:`FactMetric` entries that
turn a check's typed facts into gauges.
"""
