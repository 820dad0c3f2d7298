"""What every source yields: a batch of items and the position right after them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """Consecutive items of one source.

    ``position`` is where the source stands once these items are consumed, in the
    source's own format (None for sources that cannot resume, such as stdin). Handing
    the batch back to ``commit`` after processing it persists exactly that point, even
    if the source has read further meanwhile.
    """

    items: list[T]
    position: str | None


class Source(Protocol[T]):
    key: str
    """Names the source in the position store and in messages."""

    def batches(self) -> AsyncIterator[Batch[T]]: ...

    async def commit(self, batch: Batch[T]) -> None: ...
