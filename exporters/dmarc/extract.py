"""Bounded unpacking: from a file or a mail to the report bytes inside, never more than
the caps in :class:`Limits` in memory, whatever the input claims.

parsedmarc has its own 100 MiB decompression cap; these caps are smaller, configurable
and checked first, so parsedmarc only ever sees a payload that passed them.
"""

from __future__ import annotations

import enum
import io
import zipfile
import zlib
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.utils import parseaddr

from exporters.dmarc.errors import InvalidReport, Reason
from exporters.dmarc.limits import Limits

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
CHUNK = 1 << 16


class PayloadKind(enum.StrEnum):
    XML = "xml"
    """An aggregate report (RFC 7489 / RFC 9990)."""
    JSON = "json"
    """A TLS-RPT report (RFC 8460)."""
    MESSAGE = "message"
    """A whole mail with no report attachment: maybe a feedback (ARF) report."""


@dataclass(frozen=True, slots=True)
class Payload:
    kind: PayloadKind
    data: bytes
    sender_domain: str = ""
    """For a payload from a mail: the domain of its From (the reporting organisation)."""


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress one gzip stream, refusing output beyond ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    view = memoryview(data)
    try:
        pending = bytes(view[:CHUNK])
        offset = CHUNK
        while True:
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise InvalidReport(Reason.BOMB, f"gzip expands beyond the {limit}-byte report cap")
            if inflater.eof:
                break
            pending = inflater.unconsumed_tail
            if not pending:
                if offset >= len(data):
                    raise InvalidReport(Reason.ARCHIVE, "gzip stream is truncated")
                pending = bytes(view[offset : offset + CHUNK])
                offset += CHUNK
    except zlib.error as exc:
        raise InvalidReport(Reason.ARCHIVE, f"gzip stream is corrupt ({exc})") from None
    return bytes(out)


def unzip(data: bytes, limits: Limits) -> bytes:
    """The one report file inside a zip, read no further than the report cap."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidReport(Reason.ARCHIVE, f"not a readable zip ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            raise InvalidReport(Reason.ARCHIVE, "zip holds no file")
        if len(members) > limits.max_zip_members:
            raise InvalidReport(
                Reason.ARCHIVE, f"zip holds {len(members)} files; a report zip holds one"
            )
        member = members[0]
        if member.flag_bits & 0x1:
            raise InvalidReport(Reason.ARCHIVE, "zip member is encrypted")
        limit = limits.max_report_bytes
        if member.file_size > limit:
            raise InvalidReport(
                Reason.BOMB,
                f"zip member {member.filename!r} expands to {member.file_size} bytes (cap {limit})",
            )
        out = bytearray()
        try:
            with archive.open(member) as stream:
                while chunk := stream.read(min(CHUNK, limit + 1 - len(out))):
                    out += chunk
                    if len(out) > limit:
                        raise InvalidReport(
                            Reason.BOMB, f"zip member expands beyond the {limit}-byte cap"
                        )
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise InvalidReport(Reason.ARCHIVE, f"zip member is corrupt ({exc})") from None
        return bytes(out)


def sniff(data: bytes, limits: Limits, *, depth: int = 0) -> Payload:
    """A report from raw bytes: gzip, zip, XML or JSON (by content, not by name)."""
    if data.startswith(GZIP_MAGIC) and depth == 0:
        return sniff(gunzip(data, limits.max_report_bytes), limits, depth=1)
    if data.startswith(ZIP_MAGIC) and depth == 0:
        return sniff(unzip(data, limits), limits, depth=1)
    if len(data) > limits.max_report_bytes:
        raise InvalidReport(
            Reason.TOO_LARGE, f"report is {len(data)} bytes (cap {limits.max_report_bytes})"
        )
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return Payload(PayloadKind.XML, data)
    if head.startswith(b"{"):
        return Payload(PayloadKind.JSON, data)
    if not head:
        raise InvalidReport(Reason.NO_REPORT, "empty file")
    raise InvalidReport(Reason.NO_REPORT, "neither XML, JSON, gzip nor zip")


REPORT_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/octet-stream",
    "application/xml",
    "text/xml",
    "application/tlsrpt+gzip",
    "application/tlsrpt+json",
    "application/json",
}
REPORT_SUFFIXES = (".xml", ".gz", ".zip", ".json")


def from_message(raw: bytes, limits: Limits) -> Payload:
    """The report a mail carries: its aggregate or TLS-RPT attachment, else the mail
    itself for the feedback-report parser."""
    if len(raw) > limits.max_message_bytes:
        raise InvalidReport(
            Reason.TOO_LARGE, f"mail is {len(raw)} bytes (cap {limits.max_message_bytes})"
        )
    try:
        message = message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # the email package raises many types on broken MIME
        raise InvalidReport(Reason.NO_REPORT, f"unreadable mail ({type(exc).__name__})") from None
    sender = _sender_domain(message)
    feedback = False
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            feedback = True
        if part.is_multipart() or ctype.startswith("message/"):
            continue
        filename = (part.get_filename() or "").lower()
        if ctype not in REPORT_TYPES and not filename.endswith(REPORT_SUFFIXES):
            continue
        body = part.get_payload(decode=True)
        if not isinstance(body, bytes) or not body:
            continue
        if feedback or _inside_feedback(message, part):
            continue
        payload = sniff(body, limits)
        return Payload(payload.kind, payload.data, sender)
    if feedback or _is_text_failure_report(message):
        return Payload(PayloadKind.MESSAGE, raw, sender)
    raise InvalidReport(Reason.NO_REPORT, "mail has no report attachment and is no ARF report")


def _inside_feedback(message: Message, part: Message) -> bool:
    """Attachments of an ARF report (its sample) are not reports themselves; those of a
    TLS-RPT ``multipart/report`` (report-type tlsrpt) are."""
    return (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "")).lower() == "feedback-report"
        and part is not message
    )


def _is_text_failure_report(message: Message) -> bool:
    """Some receivers send failure reports as plain text without an ARF part (parsedmarc
    reads the common 'A message claiming to be from you has failed' form)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes) and b"A message claiming to be from you has failed" in body:
                return True
    return False


def _sender_domain(message: Message) -> str:
    _name, address = parseaddr(str(message.get("From", "")))
    return address.rpartition("@")[2].strip().lower()[:253]
