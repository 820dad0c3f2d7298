"""``mailprobe dmarc import``: files into the state file, through the same ingestor as
``serve``."""

from __future__ import annotations

from pathlib import Path

from exporters.dmarc.files import items_from_paths
from exporters.dmarc.ingest import Ingested
from monitor.config import Config
from monitor.dmarc.ingestion import build_ingestor, limits_of
from monitor.state import StateStore


async def import_paths(config: Config, paths: list[Path]) -> list[Ingested]:
    store = await StateStore.open(config.state_dir)
    ingestor = build_ingestor(config.dmarc, store, config.state_dir)
    try:
        return await ingestor.ingest_all(items_from_paths(paths, limits_of(config.dmarc)))
    finally:
        ingestor.close()
        await store.close()
