"""Subcommands of ``mailprobe``; each module offers ``register(subparsers)``."""
