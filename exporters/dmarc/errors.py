"""Why a report was refused: a short bounded code for metrics and a sentence for people."""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Bounded reasons an item is set aside (the ``reason`` label of the invalid counter)."""

    TOO_LARGE = "too_large"
    """The message, attachment or decompressed report is above its size cap."""
    BOMB = "decompression_bomb"
    """A gzip or zip member expands beyond the cap (or claims to)."""
    ARCHIVE = "bad_archive"
    """A zip or gzip that cannot be read (truncated, encrypted, several reports)."""
    DTD = "dtd"
    """A DOCTYPE, entity declaration or external entity: refused before any expansion."""
    XML = "bad_xml"
    """Not well-formed XML, or not a ``<feedback>`` document."""
    ENCODING = "bad_encoding"
    """Bytes that are not valid in the document's declared encoding (UTF-8 by default)."""
    TOO_MANY_RECORDS = "too_many_records"
    """More ``<record>`` elements than the per-report cap."""
    SCHEMA = "schema"
    """Well-formed, but a value the report format does not allow (RFC 7489 / RFC 8460)."""
    NO_REPORT = "no_report"
    """A message or file with no aggregate, TLS-RPT or feedback report in it."""
    PARSE = "parse_error"
    """The parser (parsedmarc) refused the report."""
    OTHER_DOMAIN = "other_domain"
    """A valid report about a domain that is not configured (set aside, not counted)."""


class InvalidReport(Exception):
    """An item that is not a report mailprobe accepts; ``reason`` is bounded."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
