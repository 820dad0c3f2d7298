"""Read several sources at once (one log file per Postfix instance, say)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from exporters.postfix_logs.sources.batch import Batch, Source

T = TypeVar("T")


async def merge(sources: Sequence[Source[T]]) -> AsyncIterator[tuple[Source[T], Batch[T]]]:
    """Yield ``(source, batch)`` as batches arrive from any of ``sources``.

    Each source runs in its own task and waits while its previous batch is still
    queued, so at most one batch per source is held: memory stays bounded however far
    one consumer falls behind. Commit through the source the pair names. A source
    that fails stops the merge with its exception; the others are cancelled.
    """
    queue: asyncio.Queue[tuple[int, Batch[T] | Exception | None]] = asyncio.Queue(
        maxsize=len(sources)
    )

    async def pump(index: int, source: Source[T]) -> None:
        try:
            async for batch in source.batches():
                await queue.put((index, batch))
        except Exception as exc:  # handed to the consumer, who re-raises it
            await queue.put((index, exc))
            return
        await queue.put((index, None))  # this source ended

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(sources)]
    running = len(tasks)
    try:
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield sources[index], item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
