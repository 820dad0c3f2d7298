"""Caps that bound what a single hostile report can cost, checked before parsing."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 10 * MIB
    """A whole mail (or an input file, compressed) above this is refused unread."""
    max_report_bytes: int = 10 * MIB
    """A report after decompression; decompression stops one byte past it."""
    max_records: int = 5_000
    """``<record>`` elements in one aggregate report (counted while streaming)."""
    max_zip_members: int = 4
    """A report zip normally holds one file; more members are refused, not scanned."""
