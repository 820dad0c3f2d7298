"""mailprobe's application: config, scheduling, metrics, reports and state."""

__version__ = "0.1.0"
