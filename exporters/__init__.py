"""Signal sources of mailprobe: plain libraries, one subpackage per source.

Nothing in here imports ``monitor``; the application hands settings in and takes
typed results out (see :mod:`exporters.result`).
"""
