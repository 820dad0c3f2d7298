"""The DMARC source inside mailprobe: ingestion wired to the config and the state file,
shared by ``mailprobe dmarc`` and ``serve``."""
